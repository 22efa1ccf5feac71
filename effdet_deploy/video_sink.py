"""What `infer` writes for a video source, in --output: `<stem>.mp4` (the frames with boxes drawn, same size and
frame rate as the source) and `<stem>.jsonl`, one JSON object per frame:

    {"frame": 0, "time": 0.0, "detections": [{"box": [x1, y1, x2, y2], "score": 0.91, "class": 2, "name": "triangle"}]}

`frame` counts decoded frames from 0, `time` is seconds since the first frame, boxes are in the frame's
pixels (x1, y1, x2, y2; 3 decimals), scores have 5 decimals (as detections.json), `class` is the model's 0-based
index and `name` its name. A frame without detections still has its line ("detections": []).

Both files are written under temporary names in the output folder and renamed when the run ends, so a run
that fails or is interrupted leaves neither (nor a temporary file). The video is H.264 (libx264, which
PyAV's wheels ship) in MP4, else MPEG-4 part 2; 4:2:0 needs even sizes, so an odd width or height gets one
copied edge column or row.
"""
from __future__ import annotations

import json
import os
from fractions import Fraction
from pathlib import Path
from typing import IO, Any

import numpy as np

from runtime.lazy import lazy_import
from runtime.result import Detections

DEFAULT_FPS = Fraction(30)       # a live source that states no frame rate
CODECS = ("libx264", "mpeg4")


def _temp(target: Path) -> Path:
    return target.with_name(f".{target.name}.{os.getpid()}.tmp")


def frame_record(index: int, time: float, det: Detections, names: tuple[str, ...]) -> dict[str, Any]:
    """One line of the JSON lines file (schema in the module docstring)."""
    return {"frame": index, "time": round(time, 6), "detections": [
        {"box": [round(float(v), 3) for v in box], "score": round(float(score), 5), "class": int(cls),
         "name": names[int(cls)] if 0 <= int(cls) < len(names) else str(int(cls))}
        for box, score, cls in zip(det.boxes, det.scores, det.classes)]}


class JsonLines:
    """`<stem>.jsonl`, appended frame by frame into a temporary file; `commit()` renames it into place."""

    def __init__(self, target: Path) -> None:
        self.target, self.tmp = target, _temp(target)
        self.lines = 0
        self.handle: IO[str] | None = None

    def write(self, record: dict[str, Any]) -> None:
        if self.handle is None:
            self.target.parent.mkdir(parents=True, exist_ok=True)
            self.handle = open(self.tmp, "w", encoding="utf-8")
        self.handle.write(json.dumps(record, separators=(", ", ": ")) + "\n")
        self.lines += 1

    def commit(self) -> Path:
        assert self.handle is not None, "commit() before the first frame"
        self.handle.close()
        os.replace(self.tmp, self.target)
        return self.target

    def discard(self) -> None:
        if self.handle is not None:
            self.handle.close()
        self.tmp.unlink(missing_ok=True)


def pick_codec(av: Any) -> str:
    """libx264 where this PyAV build has it, else mpeg4 (FFmpeg's own encoder, always built in)."""
    for name in CODECS:
        try:
            av.codec.Codec(name, "w")
            return name
        except Exception:     # av.codec.codec.UnknownCodecError: not in this build
            continue
    raise RuntimeError("no H.264 or MPEG-4 encoder in this PyAV build")


class AnnotatedVideo:
    """`<stem>.mp4` at `fps`, opened at the first frame (its size fixes the video's); frames of another size
    later (a stream changing resolution) are resized to it."""

    def __init__(self, target: Path, fps: Fraction | None, threads: int | None = None) -> None:
        self.target, self.tmp = target, _temp(target)
        self.fps = fps or DEFAULT_FPS
        self.threads = threads
        self.av: Any = lazy_import("av", "av (our [video] extra)")
        self.codec = pick_codec(self.av)
        self.container: Any = None
        self.frames = 0
        self.size: tuple[int, int] = (0, 0)     # (height, width) of the first frame

    def _open(self, height: int, width: int) -> None:
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self.container = self.av.open(str(self.tmp), mode="w", format="mp4")
        self.stream = self.container.add_stream(self.codec, rate=self.fps)
        self.stream.width, self.stream.height = width + width % 2, height + height % 2
        self.stream.pix_fmt = "yuv420p"
        if self.codec == "libx264":
            self.stream.options = {"crf": "20", "preset": "veryfast"}
        if self.threads:
            self.stream.codec_context.thread_count = self.threads
        self.size = (height, width)

    def write(self, rgb: np.ndarray) -> None:
        """One HxWx3 uint8 RGB picture as the next frame."""
        if self.container is None:
            self._open(rgb.shape[0], rgb.shape[1])
        if rgb.shape[:2] != self.size:
            from PIL import Image

            rgb = np.asarray(Image.fromarray(rgb).resize((self.size[1], self.size[0])))
        pad = ((0, self.size[0] % 2), (0, self.size[1] % 2), (0, 0))
        frame = self.av.VideoFrame.from_ndarray(np.pad(rgb, pad, mode="edge") if any(p[1] for p in pad) else rgb,
                                                format="rgb24")
        frame.pts, frame.time_base = self.frames, 1 / self.fps
        for packet in self.stream.encode(frame):
            self.container.mux(packet)
        self.frames += 1

    def commit(self) -> Path:
        """Flush the encoder, close the file, rename it into place."""
        assert self.container is not None, "commit() before the first frame"
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()
        self.container = None
        os.replace(self.tmp, self.target)
        return self.target

    def discard(self) -> None:
        if self.container is not None:
            try:
                self.container.close()
            except Exception:      # closing a half-written file may complain; it is deleted anyway
                pass
            self.container = None
        self.tmp.unlink(missing_ok=True)


class VideoOutputs:
    """Both outputs of one source: every frame goes to the JSON lines, and drawn to the video unless
    save_video is False. `commit()` renames both into place; `discard()` leaves nothing."""

    def __init__(self, folder: Path, stem: str, fps: Fraction | None, save_video: bool = True,
                 threads: int | None = None) -> None:
        self.jsonl = JsonLines(folder / f"{stem}.jsonl")
        self.video = AnnotatedVideo(folder / f"{stem}.mp4", fps, threads) if save_video else None

    def add(self, index: int, time: float, image: np.ndarray, det: Detections, names: tuple[str, ...]) -> None:
        self.jsonl.write(frame_record(index, time, det, names))
        if self.video is not None:
            from runtime.draw import draw_detections

            self.video.write(np.asarray(draw_detections(image, det, names)))

    def commit(self) -> list[Path]:
        """[video,] jsonl: renamed into place together (a failure between the two renames takes the first back)."""
        written: list[Path] = []
        try:
            if self.video is not None:
                written.append(self.video.commit())
            written.append(self.jsonl.commit())
        except BaseException:
            for path in written:
                path.unlink(missing_ok=True)
            self.discard()
            raise
        return written

    def discard(self) -> None:
        if self.video is not None:
            self.video.discard()
        self.jsonl.discard()
