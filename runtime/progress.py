"""Progress bars for our long loops (calibration images, sensitivity trials, eval/compare images, pipeline
steps, video frames): a count, a rate and an ETA on one line of stderr, redrawn in place.

Shown only where a person watches: the stream is a terminal and `--quiet` was not given (`configure`). Logs,
pipes, CI and tests get nothing from here, so their output stays line-oriented. While a command sends
third-party chatter to a log file (effdet_deploy/console.py points fd 2 there), `redirect` gives the bars
the real terminal. A record of our logger printed while a bar is up first clears the bar's line
(`ClearBarFilter`), so lines never mix; the bar comes back at its next update.
"""
from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from typing import IO, Iterable, Iterator, TypeVar

T = TypeVar("T")
_REDRAW_S = 0.1
_TICK_S = 1.0
_WIDTH = 24


class _State:
    quiet = False
    stream: IO[str] | None = None          # None: sys.stderr at the time a bar starts
    active: "ProgressBar | None" = None


def configure(quiet: bool) -> None:
    """--quiet: no bars at all (the command's own result lines still print)."""
    _State.quiet = quiet


@contextlib.contextmanager
def redirect(stream: IO[str]) -> Iterator[None]:
    """Bars go to `stream` within the block (the terminal, while fd 2 is a log file)."""
    before, _State.stream = _State.stream, stream
    try:
        yield
    finally:
        _State.stream = before


def _terminal() -> IO[str] | None:
    stream = _State.stream or sys.stderr
    return stream if not _State.quiet and _is_terminal(stream) else None


class ProgressBar:
    """`label [#####.....] 37/64 images 58% 0:12 ETA 0:09`. Does nothing where no terminal watches. A ticker
    redraws it every second, so the clock moves while one long call (ModelOpt's range computation) runs;
    `status` says what that call is doing."""

    def __init__(self, label: str, total: int | None, unit: str = "item", show: bool = True) -> None:
        self.label, self.total, self.unit = label, total, unit
        self.done, self.status = 0, ""
        # one bar at a time: inside an outer bar (sensitivity trials around calibrations) the inner stays hidden
        self.stream = _terminal() if show and _State.active is None else None
        self.started = time.monotonic()
        self._drawn_at, self._hidden = 0.0, False
        self._lock, self._stop = threading.Lock(), threading.Event()
        if self.stream is not None:
            _State.active = self
            self._draw()
            threading.Thread(target=self._tick, daemon=True).start()

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.stream is not None and (time.monotonic() - self._drawn_at >= _REDRAW_S or self.done == self.total):
            self._hidden = False
            self._draw()

    def close(self) -> None:
        """The finished bar stays as one line (its count and time), like tqdm's."""
        self._stop.set()
        if self.stream is not None:
            self.status = ""
            self._draw()
            with self._lock:
                self.stream.write("\n")
                self.stream.flush()
                self.stream = None
        if _State.active is self:
            _State.active = None

    def clear(self) -> None:
        """Erase the bar's line (a log line is about to print); it stays away until the next update."""
        with self._lock:
            if self.stream is not None:
                self._hidden = True
                self.stream.write("\r\x1b[K")
                self.stream.flush()

    def text(self) -> str:
        elapsed = time.monotonic() - self.started
        units = f"{self.unit}s" if self.total != 1 else self.unit
        status = f" - {self.status}" if self.status else ""
        if not self.total:
            rate = f" {self.done / elapsed:.1f}/s" if elapsed > 0 and self.done else ""
            return f"{self.label} {self.done} {units} {_clock(elapsed)}{rate}{status}"
        share = min(self.done / self.total, 1.0)
        filled = int(share * _WIDTH)
        eta = elapsed * (self.total - self.done) / self.done if self.done else None
        return (f"{self.label} [{'#' * filled}{'.' * (_WIDTH - filled)}] {self.done}/{self.total} {units} "
                f"{share:4.0%} {_clock(elapsed)}" + (f" ETA {_clock(eta)}" if eta is not None and share < 1 else "")
                + status)

    def _draw(self) -> None:
        with self._lock:
            if self.stream is not None:
                self.stream.write("\r" + self.text() + "\x1b[K")
                self.stream.flush()
                self._drawn_at = time.monotonic()

    def _tick(self) -> None:
        while not self._stop.wait(_TICK_S):
            if not self._hidden:
                self._draw()

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress_bar(label: str, total: int | None, unit: str = "item", show: bool = True) -> ProgressBar:
    """A bar to `update()` by hand; use as a context manager so it always closes. show=False: none (a
    caller that is itself a step of a bigger run)."""
    return ProgressBar(label, total, unit, show)


def track(items: Iterable[T], label: str, total: int | None = None, unit: str = "item") -> Iterator[T]:
    """Yield `items`, counting each one on a bar (total: len(items) where it has one)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with ProgressBar(label, total, unit) as bar:
        for item in items:
            yield item
            bar.update()


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 \
        else f"{seconds // 60}:{seconds % 60:02d}"


class ClearBarFilter(logging.Filter):
    """On a console handler: erase an active bar's line before the record prints (never drops a record).
    A handler whose stream is not a terminal (fd 1 pointed at a log file) leaves the bar alone."""

    def __init__(self, handler: logging.Handler) -> None:
        super().__init__()
        self.handler = handler

    def filter(self, record: logging.LogRecord) -> bool:
        if _State.active is not None and _is_terminal(getattr(self.handler, "stream", None)):
            _State.active.clear()
        return True


def watch_log(handler: logging.Handler) -> None:
    """Give `handler` a ClearBarFilter (once)."""
    if not any(isinstance(f, ClearBarFilter) for f in handler.filters):
        handler.addFilter(ClearBarFilter(handler))


def _is_terminal(stream: object) -> bool:
    try:
        return bool(stream is not None and stream.isatty())  # type: ignore[attr-defined]
    except (AttributeError, ValueError):
        return False
