"""Progress bars: on a terminal only, off with --quiet, one bar at a time, never mixed into a log line."""
from __future__ import annotations

import io
import logging
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from runtime import progress

ROOT = Path(__file__).resolve().parents[1]


class Terminal(io.StringIO):
    """A text stream that says it is a terminal (what a user's stderr is)."""

    def isatty(self) -> bool:
        return True


@pytest.fixture
def terminal():
    stream = Terminal()
    progress.configure(quiet=False)
    with progress.redirect(stream):
        yield stream
    progress.configure(quiet=False)


def test_track_counts_every_item_and_ends_the_line(terminal):
    assert list(progress.track(range(5), "demo", unit="image")) == [0, 1, 2, 3, 4]
    final = terminal.getvalue().split("\r")[-1]
    assert "demo [" in final and "5/5 images" in final and "100%" in final and final.endswith("\x1b[K\n")


def test_eta_while_running_and_unknown_total(terminal):
    with progress.progress_bar("calibrating", 4, "image") as bar:
        bar.update(2)
        assert "2/4 images" in bar.text() and " 50%" in bar.text() and "ETA" in bar.text()
    with progress.progress_bar("frames", None, "frame") as bar:
        bar.update(3)
        assert bar.text().startswith("frames 3 frames")


def test_quiet_and_pipes_get_nothing(terminal):
    progress.configure(quiet=True)
    list(progress.track(range(3), "quiet"))
    progress.configure(quiet=False)
    piped = io.StringIO()                      # not a terminal: a log file, a pipe, CI
    with progress.redirect(piped):
        list(progress.track(range(3), "piped"))
    assert terminal.getvalue() == "" and piped.getvalue() == ""


def test_inner_bar_hidden_inside_an_outer_one(terminal):
    with progress.progress_bar("sensitivity", 2, "trial") as outer:
        list(progress.track(range(3), "calibrating"))
        outer.update(2)
    assert "calibrating" not in terminal.getvalue() and "2/2 trials" in terminal.getvalue()
    list(progress.track(range(1), "after"))          # the outer one closed: bars show again
    assert "after" in terminal.getvalue()


def test_a_log_line_first_erases_the_bar(terminal):
    log = Terminal()
    handler = logging.StreamHandler(log)
    progress.watch_log(handler)
    logger = logging.getLogger("test_progress")
    logger.addHandler(handler)
    try:
        with progress.progress_bar("work", 3) as bar:
            bar.update()
            before = len(terminal.getvalue())
            logger.warning("a line")
            assert terminal.getvalue()[before:] == "\r\x1b[K" and log.getvalue() == "a line\n"
    finally:
        logger.removeHandler(handler)


def _synth_on_a_terminal(tmp_path: Path, *flags: str) -> tuple[int, str]:
    """`synth` with stderr on a pseudo-terminal (as in a user's shell); returns exit code and what the terminal saw."""
    main, child = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "effdet_deploy", "synth", *flags, "--output",
                             str(tmp_path / f"s{len(flags)}"), "--images", "3", "--image-size", "128"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=child, stdin=subprocess.DEVNULL)
    os.close(child)
    seen = b""
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:                       # the child closed its end
            break
        if not chunk:
            break
        seen += chunk
    os.close(main)
    return proc.wait(timeout=60), seen.decode(errors="replace")


def test_cli_shows_a_bar_on_a_terminal_and_none_with_quiet(tmp_path):
    code, seen = _synth_on_a_terminal(tmp_path)
    assert code == 0 and "synth [" in seen and "3/3 images" in seen
    code, seen = _synth_on_a_terminal(tmp_path, "--quiet")
    assert code == 0 and "synth [" not in seen
