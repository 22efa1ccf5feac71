"""The TensorRT-free half of the legacy calibrators, so it is tested here with numpy buffers.

Explicit-batch networks (all of ours) make TensorRT ignore `get_batch_size` and read exactly one input's
worth per binding: the input's static shape, or the calibration profile's OPT shape for a dynamic input
(TensorRT NvInfer.h `IBuilderConfig::setCalibrationProfile`: "MIN and MAX values will be overwritten by
kOPT"; trtexec samples/common/sampleEngines.cpp sizes its calibrator from that same volume). So every batch
served must have exactly that shape: a larger one would be skipped silently, a smaller one read past.

TensorRT's Python trampoline catches whatever a callback raises, prints it and carries on
(python/src/infer/pyInt8.cpp, `pyCalibratorTrampoline`, 8.6 to 10.x): the feed keeps the first error and
`raise_kept()` re-raises it after the build, with its own message.
"""
from __future__ import annotations

from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from calibration.cache_file import CalibrationCache
from runtime.errors import DeployError

Stage = Callable[[np.ndarray], int]   # copies one batch where TensorRT reads it; returns its address


class BatchFeeder:
    """Batches of exactly `shape` (the engine input's calibration shape), contiguous, in `dtype`."""

    def __init__(self, batches: Iterable[np.ndarray], shape: tuple[int, ...], dtype: type = np.float32) -> None:
        self._it: Iterator[np.ndarray] = iter(batches)
        self.shape, self.dtype = tuple(shape), dtype
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
        self.served += 1
        return np.ascontiguousarray(batch, dtype=self.dtype)


class CalibrationFeed:
    """What a legacy calibrator does, minus TensorRT: serve batches, read/write the cache, keep errors."""

    def __init__(self, batches: Iterable[np.ndarray] | None, shape: tuple[int, ...], input_name: str,
                 stage: Stage, cache: CalibrationCache) -> None:
        self.feeder = BatchFeeder(batches or [], shape)
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
