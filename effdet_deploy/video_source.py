"""What `infer --input` names when it is not an image or a folder of images: a video file, a camera, or a
stream URL, opened with PyAV (FFmpeg) and read as numbered RGB frames.

- a video file: by suffix (VIDEO_SUFFIXES); a folder always means images.
- a camera: a number (`--input 0`, as Ultralytics' source=0) or a device path (`/dev/video0`): V4L2 on Linux,
  AVFoundation on macOS. To read a file called `0`, write `./0`.
- a stream: a URL of a scheme FFmpeg reads (STREAM_SCHEMES: rtsp://, rtmp://, http(s)://, udp://, ...). Opening
  waits at most OPEN_TIMEOUT_S, each read READ_TIMEOUT_S, so a dead URL fails in seconds with one line.

Cameras and URLs are *live*: `infer` reads them until --max-frames or Ctrl-C. Frame times are seconds since
the source's first frame (from its timestamps; frame / fps where it has none).
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

import numpy as np

from runtime.errors import DeployError
from runtime.lazy import lazy_import

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".wmv", ".flv", ".mpg", ".mpeg", ".ts", ".m2ts",
                  ".mts", ".3gp", ".ogv", ".gif")
STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "rtp", "srt", "udp", "tcp", "http", "https")
OPEN_TIMEOUT_S, READ_TIMEOUT_S = 5.0, 10.0
INSTALL = "av (our [video] extra)"


@dataclass(frozen=True)
class SourceSpec:
    """kind: video | camera | stream; target/format: what av.open gets; stem: the output files' name."""
    kind: str
    target: str
    format: str | None
    label: str
    stem: str

    @property
    def live(self) -> bool:
        return self.kind != "video"


@dataclass(frozen=True)
class Frame:
    index: int          # 0-based, in decoding order
    time: float         # seconds since the first frame
    image: np.ndarray   # HxWx3 uint8 RGB


def video_spec(text: str) -> SourceSpec | None:
    """The video source `--input` names, or None for an image or a folder (the images path)."""
    if "://" in text:
        scheme = text.split("://", 1)[0].lower()
        if scheme not in STREAM_SCHEMES:
            raise DeployError(f"{text}: unknown URL scheme '{scheme}://' (streams: "
                              f"{', '.join(s + '://' for s in STREAM_SCHEMES)})")
        return SourceSpec("stream", text, None, _redacted(text), _url_stem(text))
    if text.isdigit() or text.startswith("/dev/video"):
        return _camera(text)
    path = Path(text)
    if path.suffix.lower() in VIDEO_SUFFIXES and not path.is_dir():
        if not path.is_file():
            raise DeployError(f"{text}: no such file")
        return SourceSpec("video", str(path), None, str(path), path.stem)
    return None


def _camera(text: str) -> SourceSpec:
    index = text if text.isdigit() else text.removeprefix("/dev/video")
    if sys.platform.startswith("linux"):
        device = text if text.startswith("/dev/") else f"/dev/video{int(text)}"
        return SourceSpec("camera", device, "v4l2", f"camera {index} ({device})", f"camera{index}")
    if sys.platform == "darwin" and text.isdigit():
        return SourceSpec("camera", str(int(text)), "avfoundation", f"camera {text}", f"camera{text}")
    raise DeployError(f"--input {text}: cameras by number need Linux (V4L2) or macOS (AVFoundation); on "
                      f"{sys.platform} give the camera's stream URL")


def _redacted(url: str) -> str:
    """The URL as printed: rtsp://user:secret@cam/live -> rtsp://user:***@cam/live (logs are shared)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[-1]
    return parts._replace(netloc=f"{parts.username}:***@{host}").geturl()


def _url_stem(url: str) -> str:
    """rtsp://cam:554/live/ch1.sdp -> 'ch1'; a URL without a path -> its host ('cam_554')."""
    parts = urlsplit(url)
    name = Path(parts.path).stem or parts.netloc.rsplit("@", 1)[-1]
    cleaned = "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip("._")
    return cleaned or "stream"


class VideoSource:
    """An opened source: fps (Fraction or None), width, height, total (frames, None when unknown); `frames()`
    yields Frame objects. A context manager; DeployError (one line naming the source) if it cannot be opened."""

    def __init__(self, spec: SourceSpec, threads: int | None = None) -> None:
        self.spec = spec
        self.av = lazy_import("av", INSTALL)
        self.container = self._open()
        self.stopped_early: str | None = None      # why decoding ended before the end of a file
        self._start = 0.0                          # the first frame's timestamp
        try:
            if not self.container.streams.video:
                raise DeployError(f"{spec.label}: has no video stream")
            self.stream = self.container.streams.video[0]
            self.stream.thread_type = "AUTO"          # frame + slice threads: decoding keeps up with the model
            if threads:
                self.stream.codec_context.thread_count = threads
            rate = self.stream.average_rate or self.stream.guessed_rate
            self.fps: Fraction | None = Fraction(rate) if rate else None
            self.total = self._total()
            self._decoded = self.container.decode(self.stream)
            self.first = self._first_frame()
        except BaseException:
            self.container.close()
            raise
        self.height, self.width = self.first.image.shape[:2]

    def _open(self) -> Any:
        spec, started = self.spec, time.monotonic()
        try:
            return self.av.open(spec.target, format=spec.format, timeout=(OPEN_TIMEOUT_S, READ_TIMEOUT_S),
                                metadata_errors="replace")
        except self.av.error.FFmpegError as e:
            raise DeployError(_open_error(spec, e, time.monotonic() - started)) from None

    def _total(self) -> int | None:
        """Frames in a file (for progress): the container's count, else duration x fps; None when live."""
        if self.spec.live:
            return None
        if self.stream.frames:
            return int(self.stream.frames)
        if self.container.duration and self.fps:
            return int(round(self.container.duration / 1_000_000 * float(self.fps)))
        return None

    def frames(self, limit: int | None = None) -> Iterator[Frame]:
        """Decoded frames, at most `limit`. An error or timeout after the first frame ends the run with what was
        read, the frames still inside the decoder included (`stopped_early` says why); the first frame was
        decoded when the source opened."""
        if limit is not None and limit < 1:
            return
        yield self.first
        index, broke_off = 1, ""
        while limit is None or index < limit:
            try:
                frame = next(self._decoded)
            except StopIteration:
                break
            except self.av.error.FFmpegError as e:
                broke_off = self._why(e)
                self._decoded = iter(self._drained())
                continue
            yield self._frame(index, frame)
            index += 1
        if broke_off:
            self.stopped_early = f"the input broke off after frame {index - 1} ({broke_off})"

    def _drained(self) -> list[Any]:
        """The frames a decoder still holds (H.264 keeps a few for reordering) after the input broke off."""
        try:
            return list(self.stream.codec_context.decode(None))
        except self.av.error.FFmpegError:
            return []

    def _first_frame(self) -> Frame:
        """Frame 0, decoded when opening: a file without one fails before the model loads (one line)."""
        try:
            frame = next(self._decoded)
        except StopIteration:
            raise DeployError(f"{self.spec.label}: no video frames could be decoded") from None
        except self.av.error.FFmpegError as e:
            raise DeployError(f"{self.spec.label}: no frame could be decoded ({self._why(e)})") from None
        return self._frame(0, frame)

    def _why(self, e: BaseException) -> str:
        """A read error in words; PyAV's read timeout surfaces as ExitError ('Immediate exit requested')."""
        return f"no data for {READ_TIMEOUT_S:g} s" if isinstance(e, self.av.error.ExitError) else _reason(e)

    def _frame(self, index: int, frame: Any) -> Frame:
        stamp = frame.time
        if stamp is None:
            stamp = index / float(self.fps) if self.fps else 0.0
        self._start = stamp if index == 0 else self._start
        return Frame(index, float(stamp - self._start), frame.to_ndarray(format="rgb24"))

    def close(self) -> None:
        self.container.close()

    def __enter__(self) -> "VideoSource":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _reason(e: BaseException) -> str:
    return str(getattr(e, "strerror", None) or e).splitlines()[0][:160]


def _open_error(spec: SourceSpec, e: BaseException, elapsed: float) -> str:
    """One line for a source that did not open: missing camera, refused or silent URL, unreadable file."""
    if spec.kind == "camera" and isinstance(e, (FileNotFoundError, OSError)) and getattr(e, "errno", None) == 2:
        return f"{spec.label}: no such camera"
    if spec.kind == "stream" and elapsed >= OPEN_TIMEOUT_S * 0.9:
        return f"{spec.label}: no answer within {OPEN_TIMEOUT_S:g} s ({_reason(e)})"
    what = {"video": "not a readable video", "camera": "cannot open the camera",
            "stream": "cannot open the stream"}[spec.kind]
    return f"{spec.label}: {what} ({_reason(e)})"
