"""The batch logic of the legacy TensorRT calibrators, kept free of TensorRT so it is tested here:
constant batch size and shape, contiguous arrays of the engine input's dtype, a count of batches."""
from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np

from runtime.errors import DeployError


class BatchFeeder:
    def __init__(self, batches: Iterable[np.ndarray], batch_size: int, dtype: type = np.float32) -> None:
        self._it: Iterator[np.ndarray] = iter(batches)
        self.batch_size, self.dtype = batch_size, dtype
        self.shape: tuple[int, ...] | None = None
        self.served = 0

    def next_batch(self) -> np.ndarray | None:
        """The next batch, or None when calibration data is exhausted (TensorRT's end signal)."""
        batch = next(self._it, None)
        if batch is None:
            return None
        if batch.shape[0] != self.batch_size:
            raise DeployError(f"calibration batch {self.served} has {batch.shape[0]} images, expected {self.batch_size}")
        if self.shape is None:
            self.shape = tuple(batch.shape)
        elif tuple(batch.shape) != self.shape:
            raise DeployError(f"calibration batch {self.served} has shape {batch.shape}, earlier ones {self.shape}")
        self.served += 1
        return np.ascontiguousarray(batch, dtype=self.dtype)
