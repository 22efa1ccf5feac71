"""What a command leaves when Ctrl-C (or a crash) stops it: no temporary files anywhere, and a pipeline
folder that says it is unfinished (INCOMPLETE) instead of looking like a finished run without a report."""
from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from pathlib import Path
from typing import Iterator

from runtime.atomic import write_atomic

INCOMPLETE = "INCOMPLETE"


@contextlib.contextmanager
def private_tempdir() -> Iterator[Path]:
    """Every temporary file of the block (ModelOpt's mkstemp'd intermediate ONNX, ONNX Runtime's calibration
    folders, ours) in one folder removed however the block ends: Ctrl-C in quantize left 0-byte files in /tmp."""
    before = tempfile.tempdir
    folder = Path(tempfile.mkdtemp(prefix="effdet-tmp-"))
    tempfile.tempdir = str(folder)
    try:
        yield folder
    finally:
        tempfile.tempdir = before
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def new_files_removed_on_failure(folder: Path) -> Iterator[None]:
    """Files and folders the block creates under `folder` go again if it does not finish (Ctrl-C or a failure):
    e.g. a Triton repository holding the model copy but not yet its config.pbtxt. What was there before stays
    (a file the block replaced atomically keeps its new, complete content)."""
    before = set(folder.rglob("*")) if folder.is_dir() else set()
    try:
        yield
    except BaseException:
        created = set(folder.rglob("*")) - before if folder.is_dir() else set()
        for path in sorted(created, key=lambda p: -len(p.parts)):       # files and subfolders before their folder
            if not path.is_dir():
                path.unlink(missing_ok=True)
            elif not any(path.iterdir()):
                path.rmdir()
        raise


class IncompleteMark:
    """OUTPUT/INCOMPLETE from the first step until the report is written: a stopped run is recognisable
    as one (the file names the step it stopped in), and a previous run's report is never left beside it."""

    def __init__(self, folder: Path, stale: tuple[str, ...]) -> None:
        self.path = folder / INCOMPLETE
        for name in stale:                        # an older run's report would describe other files
            (folder / name).unlink(missing_ok=True)
        self.update("started")

    def update(self, step: str) -> None:
        write_atomic(self.path, f"pipeline not finished: {step} ({time.strftime('%Y-%m-%d %H:%M:%S')}); "
                                "report.md and summary.json are written only by a complete run\n")

    def done(self) -> None:
        self.path.unlink(missing_ok=True)
