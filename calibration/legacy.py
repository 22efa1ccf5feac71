"""Implicit INT8 calibration for TensorRT 8.6-10.x and JetPack: IInt8EntropyCalibrator2 / MinMax
subclasses fed by the same image pipeline as ModelOpt, one pinned/device buffer via cuda-python, and a
cache read and written atomically. Removed in TensorRT 11 (IInt8Calibrator is absent from v11.0's
NvInfer.h; deprecated since 10.1): new deployments should use the Q/DQ INT8 ONNX from
`effdet-deploy quantize`, which needs no calibrator at build time.

The batch/shape rules and the error keeping live in calibration/feeder.py (tested without TensorRT);
engine building receives a `LegacyCalibration` from its caller and never imports this package.
"""
from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Iterable

import numpy as np
import tensorrt as trt

from calibration.cache_file import CalibrationCache
from calibration.feeder import CalibrationFeed
from runtime import cudart
from runtime.cuda_memory import PinnedBuffer
from runtime.log import logger


class DeviceStaging:
    """One pinned host buffer and its device twin, sized by the first batch; the copy is complete before
    the address goes to TensorRT (it reads the buffer on its own stream)."""

    def __init__(self) -> None:
        self.buffer: PinnedBuffer | None = None
        self.copies = 0

    def __call__(self, batch: np.ndarray) -> int:
        if self.buffer is None:
            self.buffer = PinnedBuffer(batch.nbytes)
        self.buffer.host_array(batch.shape, batch.dtype)[...] = batch
        self.buffer.to_device(batch.nbytes, 0)
        cudart.stream_synchronize(0)   # CUDA Runtime API cudaStreamSynchronize: the copy is done before TensorRT reads
        self.copies += 1
        if self.copies % 10 == 0:
            logger.info(f"calibrating: batch {self.copies}")
        return self.buffer.device_ptr

    def free(self) -> None:
        if self.buffer is not None:
            self.buffer.free()
            self.buffer = None


class _FeedMethods:
    """TensorRT's four callbacks (names from python/src/infer/pyInt8.cpp, 8.6-10.x), all on the feed."""

    feed: CalibrationFeed

    def get_batch_size(self) -> int:   # ignored for explicit-batch networks (NvInfer.h 10.x: deprecated in 10.0)
        return self.feed.get_batch_size()

    def get_batch(self, names: list[str]) -> list[int] | None:   # None ends calibration (the stub says list[int])
        return self.feed.get_batch(names)

    def read_calibration_cache(self) -> bytes | None:
        return self.feed.read_cache()

    def write_calibration_cache(self, cache: memoryview) -> None:
        self.feed.write_cache(cache)


class EntropyCalibrator(_FeedMethods, trt.IInt8EntropyCalibrator2):  # type: ignore[misc]
    """TensorRT's default INT8 calibrator (KL-divergence ranges), as NVIDIA's EfficientDet sample used."""

    def __init__(self, feed: CalibrationFeed) -> None:
        trt.IInt8EntropyCalibrator2.__init__(self)   # pybind trampolines need the base __init__ (stub docstring)
        self.feed = feed


class MinMaxCalibrator(_FeedMethods, trt.IInt8MinMaxCalibrator):  # type: ignore[misc]
    """Max-abs ranges: better where outliers matter (detection heads' box regressions)."""

    def __init__(self, feed: CalibrationFeed) -> None:
        trt.IInt8MinMaxCalibrator.__init__(self)   # same trampoline as above (pyInt8.cpp), 8.6-10.x
        self.feed = feed


CALIBRATORS: dict[str, type[EntropyCalibrator] | type[MinMaxCalibrator]] = {
    "entropy": EntropyCalibrator, "minmax": MinMaxCalibrator}


class LegacyCalibration:
    """What engine building needs (`calibrator`, `raise_kept`), and the buffer freed on close."""

    def __init__(self, feed: CalibrationFeed, method: str, staging: DeviceStaging) -> None:
        self.feed, self.staging = feed, staging
        self.calibrator: trt.IInt8Calibrator = CALIBRATORS[method](feed)
        self.shape: tuple[int, ...] = feed.feeder.shape   # what TensorRT reads per batch

    def raise_kept(self) -> None:
        self.feed.raise_kept()

    def close(self) -> None:
        self.staging.free()

    def __enter__(self) -> LegacyCalibration:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()


def legacy_calibration(cache: Path, shape: tuple[int, ...], input_name: str, method: str = "entropy",
                       batches: Iterable[np.ndarray] | None = None) -> LegacyCalibration:
    """Replay `cache` (no batches: trtexec --calib), or calibrate on `batches` of exactly `shape` and write it."""
    staging = DeviceStaging()
    feed = CalibrationFeed(batches, shape, input_name, staging, CalibrationCache(cache))
    return LegacyCalibration(feed, method, staging)


def calibration_from_images(cache: Path, calib_dir: Path | None, meta: dict[str, str], source: str,
                            shape: tuple[int, ...], input_name: str, count: int, method: str) -> LegacyCalibration:
    """The cache alone, or `count` images of calib_dir through the runtime's preprocessing, in batches of shape[0]."""
    if calib_dir is None:
        return legacy_calibration(cache, shape, input_name, method)
    from calibration.images import CalibrationImages
    from runtime.model_info import ModelInfo

    images = CalibrationImages(calib_dir, ModelInfo.from_metadata(meta, source), count, shape[0],
                               input_name=input_name)
    return legacy_calibration(cache, shape, input_name, method, images.batches())
