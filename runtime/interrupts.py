"""Ctrl-C held back while native code runs Python callbacks: a KeyboardInterrupt raised inside the
EfficientNMS_TRT stand-in (an onnxruntime-extensions Python custom op, runtime/ort_plugins.py) unwinds through
pybind11 and ONNX Runtime's C++ and aborts the process ("terminate called after throwing an instance of
'pybind11::error_already_set'"). Inside `deferred_sigint()` SIGINT only sets a flag; the KeyboardInterrupt is
raised once the block is left, in plain Python, where the command's one-line handling sees it.
"""
from __future__ import annotations

import contextlib
import importlib.machinery
import signal
import threading
from types import FrameType, ModuleType
from typing import Any, Iterator


@contextlib.contextmanager
def deferred_sigint() -> Iterator[None]:
    """SIGINT during the block is raised as KeyboardInterrupt after it (main thread only: elsewhere Python
    delivers no signals, and the handler cannot be swapped)."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is None:
        yield         # None: a handler set outside Python (Triton's python backend stub), which cannot be put back
        return
    caught: list[int] = []

    def note(signum: int, frame: FrameType | None) -> None:
        caught.append(signum)

    previous: Any = signal.signal(signal.SIGINT, note)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        if callable(previous):
            previous(signal.SIGINT, None)     # the default handler raises KeyboardInterrupt
        elif previous != signal.SIG_IGN:
            raise KeyboardInterrupt


def defer_sigint_in_native_module_init() -> None:
    """Every extension module's init runs under `deferred_sigint()`: a Ctrl-C while onnx's nanobind module builds
    its enums (Python callbacks inside C++ init) aborted the process with "terminate called after throwing an
    instance of 'nanobind::python_error'" (the sweep's lint case, in CI). The loader class is wrapped once, for the
    command line only (cli.py): a program that imports our library keeps Python's import machinery as it was."""
    loader = importlib.machinery.ExtensionFileLoader
    if getattr(loader, "_sigint_deferred", False):
        return
    create, execute = loader.create_module, loader.exec_module

    def create_module(self: importlib.machinery.ExtensionFileLoader, spec: importlib.machinery.ModuleSpec) -> Any:
        with deferred_sigint():
            return create(self, spec)

    def exec_module(self: importlib.machinery.ExtensionFileLoader, module: ModuleType) -> None:
        with deferred_sigint():
            execute(self, module)

    setattr(loader, "create_module", create_module)
    setattr(loader, "exec_module", exec_module)
    setattr(loader, "_sigint_deferred", True)
