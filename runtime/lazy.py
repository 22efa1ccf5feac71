"""One helper for heavy optional imports (onnxruntime, tensorrt, cuda-python, pycocotools, modelopt):
imported only when used, and a missing one is one DeployError naming what to install."""
from __future__ import annotations

import importlib
from types import ModuleType

from runtime.errors import DeployError
from runtime.interrupts import deferred_sigint


def lazy_import(module: str, install: str) -> ModuleType:
    """`importlib.import_module(module)`, or DeployError('... needs X (pip install <install>)')."""
    try:
        with deferred_sigint():     # Ctrl-C inside a native module's init (modelopt -> lief, nanobind) aborted
            return importlib.import_module(module)    # the process: SIGABRT, no cleanup; now raised after it
    except ImportError as e:
        raise DeployError(f"this needs {module.split('.')[0]} ({e.msg}); install it: pip install {install}") from None
