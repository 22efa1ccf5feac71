"""Implicit INT8 calibration for TensorRT 8.6-10.x and JetPack: IInt8EntropyCalibrator2 / MinMax
subclasses fed by the same image pipeline as ModelOpt, device buffers via cuda-python, and a cache read
and written atomically. Removed in TensorRT 11 (and deprecated since 10.1): new deployments should use
the Q/DQ INT8 ONNX from `effdet-deploy quantize`, which needs no calibrator at build time.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np
import tensorrt as trt

from calibration.cache_file import CalibrationCache
from calibration.feeder import BatchFeeder
from runtime.cuda_memory import PinnedBuffer
from runtime.log import logger


class _Feed:
    """What both calibrators share: the feeder, one pinned/device buffer, the cache."""

    def __init__(self, batches: Iterable[np.ndarray] | None, batch_size: int, cache: CalibrationCache) -> None:
        self.feeder = BatchFeeder(batches or [], batch_size)
        self.cache = cache
        self.buffer: PinnedBuffer | None = None
        self.stream = 0  # legacy default stream: calibration is not performance-critical

    def next_pointer(self) -> list[int] | None:
        batch = self.feeder.next_batch()
        if batch is None:
            return None
        if self.buffer is None:
            self.buffer = PinnedBuffer(batch.nbytes)
        self.buffer.host_array(batch.shape, batch.dtype)[...] = batch
        self.buffer.to_device(batch.nbytes, self.stream)
        if self.feeder.served % 10 == 0:
            logger.info(f"calibrating: batch {self.feeder.served}")
        return [self.buffer.device_ptr]


class _FeedMethods:
    """The four calibrator callbacks, shared by both TensorRT calibrator classes below."""

    feed: _Feed

    def get_batch_size(self) -> int:
        return self.feed.feeder.batch_size

    def get_batch(self, names: list[str]) -> list[int] | None:
        return self.feed.next_pointer()   # None ends calibration (TensorRT docs; the stub says list[int])

    def read_calibration_cache(self) -> bytes | None:
        return self.feed.cache.read()

    def write_calibration_cache(self, cache: memoryview | bytes) -> None:
        self.feed.cache.write(bytes(cache))


class EntropyCalibrator(_FeedMethods, trt.IInt8EntropyCalibrator2):  # type: ignore[misc]
    """TensorRT's default INT8 calibrator (KL-divergence ranges), as NVIDIA's EfficientDet sample used."""

    def __init__(self, batches: Iterable[np.ndarray] | None, batch_size: int, cache: CalibrationCache) -> None:
        trt.IInt8EntropyCalibrator2.__init__(self)
        self.feed = _Feed(batches, batch_size, cache)


class MinMaxCalibrator(_FeedMethods, trt.IInt8MinMaxCalibrator):  # type: ignore[misc]
    """Max-abs ranges: better where outliers matter (detection heads' box regressions)."""

    def __init__(self, batches: Iterable[np.ndarray] | None, batch_size: int, cache: CalibrationCache) -> None:
        trt.IInt8MinMaxCalibrator.__init__(self)
        self.feed = _Feed(batches, batch_size, cache)


CALIBRATORS: dict[str, type] = {"entropy": EntropyCalibrator, "minmax": MinMaxCalibrator}


def cache_only_calibrator(cache: Path, method: str = "entropy") -> trt.IInt8Calibrator:
    """A calibrator that only replays an existing cache (trtexec --calib): no images needed."""
    return CALIBRATORS[method](None, 1, CalibrationCache(cache))


def image_calibrator(batches: Iterable[np.ndarray], batch_size: int, cache: Path,
                     method: str = "entropy") -> trt.IInt8Calibrator:
    """A calibrator fed with prepared image batches; writes the cache when TensorRT is done."""
    return CALIBRATORS[method](batches, batch_size, CalibrationCache(cache))
