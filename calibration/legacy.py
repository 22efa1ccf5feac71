"""Implicit INT8 calibration for TensorRT 8.6-10.x and JetPack: IInt8EntropyCalibrator2 / MinMax
subclasses fed by the same image pipeline as ModelOpt, one pinned/device buffer via cuda-python, and a
cache read and written atomically. Removed in TensorRT 11 (IInt8Calibrator is absent from v11.0's
NvInfer.h; deprecated since 10.1): new deployments should use the Q/DQ INT8 ONNX from
`effdet-deploy quantize`, which needs no calibrator at build time.

The batch/shape/dtype rules and the error keeping live in calibration/feeder.py (tested without TensorRT);
engine building receives a `LegacyCalibration` from its caller and never imports this package. The
calibrator classes are made on first use (`calibrator_classes`), after checking the installed TensorRT still
has their base classes, so this module imports anywhere and TensorRT 11 gets one line, not an AttributeError.
"""
from __future__ import annotations

import functools
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Callable

import numpy as np

from calibration.feeder import CalibrationFeed, image_feed
from runtime import cudart
from runtime.cuda_memory import PinnedBuffer
from runtime.errors import DeployError
from runtime.log import logger
from runtime.trt_compat import require_tensorrt

if TYPE_CHECKING:
    import tensorrt as trt


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


# TensorRT's Python base class per --method (python/src/infer/pyInt8.cpp, 8.6-10.x; the file and the
# IInt8Calibrator family are gone from v11.0's python/src/infer and include/NvInfer.h).
CALIBRATOR_BASES = {"entropy": "IInt8EntropyCalibrator2", "minmax": "IInt8MinMaxCalibrator"}


def require_calibrator_bases(tensorrt: object, version: str) -> None:
    """DeployError unless the installed tensorrt module still has the implicit INT8 calibrator classes."""
    missing = [name for name in CALIBRATOR_BASES.values() if not hasattr(tensorrt, name)]
    if missing:
        raise DeployError(f"TensorRT {version} has no {'/'.join(missing)}: implicit INT8 calibration was removed "
                          "in TensorRT 11.0 (deprecated since 10.1); build an INT8 Q/DQ ONNX (effdet-deploy "
                          "quantize) instead of --int8 --calib-cache")


@functools.cache
def calibrator_classes() -> dict[str, Callable[[CalibrationFeed], trt.IInt8Calibrator]]:
    """{method: calibrator class} on the installed TensorRT, made once; DeployError where it has none."""
    version = require_tensorrt()
    import tensorrt as trt

    require_calibrator_bases(trt, version)

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

    return {"entropy": EntropyCalibrator, "minmax": MinMaxCalibrator}


class LegacyCalibration:
    """What engine building needs (`calibrator`, `raise_kept`), and the buffer freed on close."""

    def __init__(self, feed: CalibrationFeed, method: str, staging: DeviceStaging) -> None:
        self.feed, self.staging = feed, staging
        self.calibrator: trt.IInt8Calibrator = calibrator_classes()[method](feed)
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


def calibration_from_images(cache: Path, calib_dir: Path | None, meta: dict[str, str], source: str,
                            shape: tuple[int, ...], input_name: str, count: int, method: str) -> LegacyCalibration:
    """The cache alone, or `count` images of calib_dir through the runtime's preprocessing, in batches of
    shape[0] and the file's input dtype (calibration/feeder.py image_feed)."""
    calibrator_classes()            # refuse a TensorRT without calibrators before reading images
    staging = DeviceStaging()
    feed = image_feed(cache, calib_dir, meta, source, shape, input_name, count, staging)
    return LegacyCalibration(feed, method, staging)
