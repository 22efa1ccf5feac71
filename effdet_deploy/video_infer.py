"""`infer` on one video source: frames in batches through `detect()`, each frame's detections to the JSON lines
and its drawing to the annotated video (effdet_deploy/video_sink.py), a progress bar on a terminal, a line now
and then for logs.

Ctrl-C: on a file it is an interrupt (exit 130, neither output left). On a live source (camera, URL) it is the
way to stop: the batch in hand is finished, both outputs are written with every frame so far, and the run
ends normally (exit 0); a second Ctrl-C aborts as on a file. A Ctrl-C before the first frame is an interrupt.
"""
from __future__ import annotations

import contextlib
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Iterator

from effdet_deploy.video_sink import VideoOutputs
from effdet_deploy.video_source import Frame, VideoSource
from runtime.log import logger
from runtime.model_info import ModelInfo
from runtime.progress import progress_bar

DEFAULT_BATCH = 8        # frames per detect() call where the file allows any number
REPORT_S = 10.0          # seconds between progress lines when no bar is shown


@dataclass
class VideoRun:
    """What one source gave: frames and detections written, seconds, why it ended early (if it did)."""
    frames: int = 0
    detections: int = 0
    seconds: float = 0.0
    stopped: str | None = None
    written: list[Path] = field(default_factory=list)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def batch_size(requested: int | None, info: ModelInfo) -> int:
    """--batch, else the file's batch when it is static, else DEFAULT_BATCH within the file's maximum.
    (detect() splits a larger list into the file's batches, and pads a smaller one to its minimum.)"""
    if requested:
        return requested
    lo, hi = info.batch
    return hi if lo == hi else min(DEFAULT_BATCH, hi)


class _Stop:
    requested = False


@contextlib.contextmanager
def ctrl_c_stops(live: bool) -> Iterator[_Stop]:
    """On a live source the first SIGINT only asks the loop to stop; the second raises KeyboardInterrupt."""
    stop = _Stop()
    if not live or threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if stop.requested:
            raise KeyboardInterrupt
        stop.requested = True

    previous: Any = signal.signal(signal.SIGINT, handler)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


def batches(frames: Iterator[Frame], size: int, stop: _Stop) -> Iterator[list[Frame]]:
    """Lists of up to `size` frames; a stop request closes the batch in hand and ends."""
    batch: list[Frame] = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == size or stop.requested:
            yield batch
            batch = []
        if stop.requested:
            return
    if batch:
        yield batch


def infer_video(source: VideoSource, detector: Any, outputs: VideoOutputs, batch: int,
                max_frames: int | None = None) -> VideoRun:
    """Run every frame (up to max_frames) of `source` through `detector` into `outputs`; commit them."""
    run, names = VideoRun(), detector.info.class_names
    total = min(t for t in (source.total, max_frames) if t is not None) if (source.total or max_frames) else None
    started = last_report = time.monotonic()
    try:
        with ctrl_c_stops(source.spec.live) as stop, \
                progress_bar(source.spec.stem, total, unit="frame") as bar:
            for group in batches(source.frames(max_frames), batch, stop):
                found = detector.detect([f.image for f in group])
                for frame, det in zip(group, found):
                    outputs.add(frame.index, frame.time, frame.image, det, names)
                    run.detections += len(det)
                run.frames += len(group)
                run.seconds = time.monotonic() - started
                bar.update(len(group))
                if run.frames == len(group) or (bar.stream is None and time.monotonic() - last_report >= REPORT_S):
                    last_report = time.monotonic()
                    logger.info("[%d%s] %s: %d detections, %.1f frames/s", run.frames, f"/{total}" if total else "",
                                source.spec.stem, run.detections, run.fps)
            if stop.requested:
                if run.frames == 0:
                    raise KeyboardInterrupt
                run.stopped = f"stopped by Ctrl-C after {run.frames} frames"
        run.stopped = run.stopped or source.stopped_early
        run.written = outputs.commit()
    except BaseException:
        outputs.discard()
        raise
    return run
