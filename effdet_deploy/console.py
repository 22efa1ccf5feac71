"""Our progress on the console, third-party chatter in a log file (DEVELOPERS.md: "Our progress on the
console; third-party chatter into a log file").

`third_party_to_log(path, verbose)` redirects file descriptors 1 and 2 - so C/C++ libraries (ONNX Runtime,
TensorRT), Python prints (ModelOpt's calibration histograms), tqdm bars, warnings and other packages'
loggers all land in `path` - while the records of our package logger still reach the real console.
With `verbose` (-v) the third-party output is shown live as well (a thread tees it to the console).
A record that a third-party logger's own handler already wrote is not written again by the root handler
(ModelOpt's logger has its own handler and propagates too: every line came out twice).
"""
from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import sys
import threading
from pathlib import Path
from typing import IO, Callable, Iterator

from runtime import progress
from runtime.log import logger

OUR_LOGGER = logger.name


@contextlib.contextmanager
def third_party_to_log(path: Path, verbose: bool = False) -> Iterator[Path]:
    """Within the block: fd 1/2 -> `path` (tee'd to the console when verbose), our logger -> console.
    A block that fails before anything reached the log (bad input found first) leaves no empty log behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _flush_all()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    console = os.fdopen(os.dup(saved[1]), "w", buffering=1, encoding="utf-8", errors="replace")
    bars = os.fdopen(os.dup(saved[2]), "w", buffering=1, encoding="utf-8", errors="replace")  # progress: the terminal
    log = open(path, "wb", buffering=0)
    tee = _Tee(log, os.dup(saved[1])) if verbose else None
    for fd in (1, 2):
        os.dup2(tee.write_fd if tee else log.fileno(), fd)
    streams = sys.stdout, sys.stderr      # may not be fd 1/2 (pytest's capture): Python prints follow fd 1/2 too
    sys.stdout, sys.stderr = (open(os.dup(fd), "w", buffering=1, encoding="utf-8", errors="replace") for fd in (1, 2))
    restore_logging = _route_logging(console, verbose)
    failed = True
    try:
        with progress.redirect(bars):
            yield path
        failed = False
    finally:
        _flush_all()
        restore_logging()
        for stream in (sys.stdout, sys.stderr):
            stream.close()
        sys.stdout, sys.stderr = streams
        for fd in (1, 2):
            os.dup2(saved[fd], fd)
            os.close(saved[fd])
        if tee is not None:
            tee.close()
        console.close()
        bars.close()
        log.close()
        if failed and path.stat().st_size == 0:
            path.unlink()


def _route_logging(console: IO[str], verbose: bool) -> Callable[[], None]:
    """Our records -> console (and the log, via sys.stdout); quiet double-printing third-party loggers."""
    ours = logging.getLogger(OUR_LOGGER)
    formatter = logging.Formatter("%(message)s")
    # verbose: sys.stdout is the tee, which shows the line on the console and writes it to the log
    handlers = [logging.StreamHandler(sys.stdout)] + ([] if verbose else [logging.StreamHandler(console)])
    for h in handlers:
        h.setFormatter(formatter)
        progress.watch_log(h)
        ours.addHandler(h)
    before = ours.propagate
    ours.propagate = False
    root_handlers = list(logging.getLogger().handlers)
    for root_handler in root_handlers:
        root_handler.addFilter(_printed_elsewhere)

    def restore() -> None:
        for h in handlers:
            ours.removeHandler(h)
        ours.propagate = before
        for root_handler in root_handlers:
            root_handler.removeFilter(_printed_elsewhere)
    return restore


def _printed_elsewhere(record: logging.LogRecord) -> bool:
    """Root-handler filter: False for records a handler of their own logger (or a parent below root) already
    wrote - ModelOpt's logger has its own handler and propagates too, so every line came out twice."""
    lg: logging.Logger | None = logging.getLogger(record.name)
    while lg is not None and lg is not logging.getLogger():
        if lg.handlers:
            return False
        lg = lg.parent if lg.propagate else None
    return True


class _Tee:
    """A pipe whose reader thread copies everything into the log file and onto the console fd (its own)."""

    def __init__(self, log: IO[bytes], console_fd: int) -> None:
        self.read_fd, self.write_fd = os.pipe()
        self.log, self.console_fd = log, console_fd
        self.thread = threading.Thread(target=self._copy, daemon=True)
        self.thread.start()

    def _copy(self) -> None:
        while chunk := os.read(self.read_fd, 65536):
            self.log.write(chunk)
            os.write(self.console_fd, chunk)

    def close(self) -> None:
        os.close(self.write_fd)
        self.thread.join(timeout=5)       # a forked child still holding the pipe must not hang us
        os.close(self.read_fd)
        os.close(self.console_fd)


def _flush_all() -> None:
    """Python's buffers and C stdio's, so nothing written before a switch lands on the other side of it."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    with contextlib.suppress(Exception):
        ctypes.CDLL(None).fflush(None)


def log_path_for(output: Path, name: str) -> Path:
    """Where a command's third-party log goes: OUTPUT/NAME.log for a folder, OUTPUT.log beside a file."""
    return output / f"{name}.log" if output.suffix == "" else output.with_suffix(".log")
