"""The TensorRT-free half of the legacy calibrators, so it is tested here with numpy buffers.

Explicit-batch networks (all of ours) make TensorRT ignore `get_batch_size` and read exactly one input's
worth per binding: the input's static shape, or the calibration profile's OPT shape for a dynamic input
(TensorRT NvInfer.h `IBuilderConfig::setCalibrationProfile`: "MIN and MAX values will be overwritten by
kOPT"; trtexec samples/common/sampleEngines.cpp sizes its calibrator from that same volume). So every batch
served must have exactly that shape: a larger one would be skipped silently, a smaller one read past.

TensorRT's Python trampoline catches whatever a callback raises, prints it and carries on
(python/src/infer/pyInt8.cpp, `pyCalibratorTrampoline`, 8.6 to 10.x): the feed keeps the first error and
`raise_kept()` re-raises it after the build, with its own message.

TensorRT reads each batch in the engine input's own type from the address get_batch returns (getBatch
hands over bare device pointers, NvInfer.h 8.6-10.x), so batches are served in the ONNX input's dtype: a
uint8-input file (`export --input-dtype uint8`) gets uint8 bytes, never float32 ones read a quarter at a time.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import numpy.typing as npt

from calibration.cache_file import CalibrationCache
from calibration.images import CalibrationImages
from runtime.errors import DeployError
from runtime.model_info import ModelInfo

Stage = Callable[[np.ndarray], int]   # copies one batch where TensorRT reads it; returns its address


class BatchFeeder:
    """Batches of exactly `shape` and `dtype` (the engine input's calibration shape and type), contiguous.

    A batch of another width of the same kind (float64 for float32) is converted; another kind (float for a
    uint8 input) is refused: its values are not what that input holds."""

    def __init__(self, batches: Iterable[np.ndarray], shape: tuple[int, ...], dtype: npt.DTypeLike) -> None:
        self._it: Iterator[np.ndarray] = iter(batches)
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)
        self.served = 0

    @property
    def batch_size(self) -> int:
        return self.shape[0]

    def next_batch(self) -> np.ndarray | None:
        """The next batch, or None when calibration data is exhausted (TensorRT's end signal)."""
        batch = next(self._it, None)
        if batch is None:
            return None
        if tuple(batch.shape) != self.shape:
            raise DeployError(f"calibration batch {self.served} has shape {tuple(batch.shape)}, but TensorRT reads "
                              f"{self.shape} per batch (the input's static or calibration-profile OPT shape)")
        if batch.dtype.kind != self.dtype.kind:
            raise DeployError(f"calibration batch {self.served} is {batch.dtype}, but TensorRT reads the input as "
                              f"{self.dtype} (the ONNX input's type)")
        self.served += 1
        return np.ascontiguousarray(batch, dtype=self.dtype)


class CalibrationFeed:
    """What a legacy calibrator does, minus TensorRT: serve batches, read/write the cache, keep errors.
    `dtype`: the engine input's type, the type TensorRT reads the served bytes as (see image_feed)."""

    def __init__(self, batches: Iterable[np.ndarray] | None, shape: tuple[int, ...], input_name: str,
                 stage: Stage, cache: CalibrationCache, dtype: npt.DTypeLike) -> None:
        self.feeder = BatchFeeder(batches or [], shape, dtype)
        self.input_name, self.stage, self.cache = input_name, stage, cache
        self.kept: tuple[str, BaseException] | None = None

    def _keep(self, where: str, error: BaseException) -> None:
        if self.kept is None:
            self.kept = (where, error)

    def get_batch_size(self) -> int:
        return self.feeder.batch_size

    def get_batch(self, names: Sequence[str]) -> list[int] | None:
        """One device address per name in `names` (the trampoline copies len(names) of them), or None at
        the end or after an error (kept)."""
        if self.kept is not None:
            return None
        try:
            if list(names) != [self.input_name]:
                raise DeployError(f"TensorRT asks calibration data for {list(names)}; this feed has "
                                  f"'{self.input_name}' only")
            batch = self.feeder.next_batch()
            if batch is None and self.feeder.served == 0:
                raise DeployError("calibration got no image batch at all (and no cache to replay)")
            return None if batch is None else [self.stage(batch)]
        except BaseException as e:   # the trampoline would print and swallow it
            self._keep("get_batch", e)
            return None

    def read_cache(self) -> bytes | None:
        try:
            return self.cache.read()
        except BaseException as e:
            self._keep("read_calibration_cache", e)
            return None

    def write_cache(self, data: memoryview | bytes) -> None:
        try:
            self.cache.write(bytes(data))
        except BaseException as e:
            self._keep("write_calibration_cache", e)

    def raise_kept(self) -> None:
        """Re-raise what a callback raised inside TensorRT, as one DeployError line with its message."""
        if self.kept is None:
            return
        where, error = self.kept
        if isinstance(error, DeployError):
            raise error
        raise DeployError(f"INT8 calibration failed in {where}: {type(error).__name__}: {error}") from error


def image_feed(cache: Path, calib_dir: Path | None, meta: dict[str, str], source: str, shape: tuple[int, ...],
               input_name: str, count: int, stage: Stage) -> CalibrationFeed:
    """The cache alone (no calib_dir: replay, nothing served), or `count` images of calib_dir through the
    runtime's preprocessing in batches of shape[0], served in the file's input dtype (its metadata's
    input_dtype, the type export gave the ONNX input and prepare_batch produces)."""
    info = ModelInfo.from_metadata(meta, source)
    batches = None if calib_dir is None else CalibrationImages(calib_dir, info, count, shape[0],
                                                               input_name=input_name).batches()
    return CalibrationFeed(batches, shape, input_name, stage, CalibrationCache(cache), info.input_dtype)
