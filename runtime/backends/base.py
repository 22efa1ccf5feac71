"""One backend interface (as Polygraphy's runners): open a file, run a prepared batch, close.

A backend takes the network-input batch exactly as the file wants it (layout, dtype, normalization are
done by the Detector from ModelInfo) and returns the outputs by name: the four NMS outputs, or raw
`boxes`/`scores` for `--nms none` files.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from runtime.model_info import ModelInfo


class Backend(ABC):
    name = "base"

    def __init__(self, path: str | Path, device: str | None = None) -> None:
        self.path = Path(path)
        self.device = device
        self.info: ModelInfo = self.open()

    @abstractmethod
    def open(self) -> ModelInfo:
        """Load the file; return what it says about itself."""

    @abstractmethod
    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Network-input batch [B,...] -> outputs by name (numpy, on the host)."""

    def close(self) -> None:
        """Release sessions, contexts and buffers (idempotent)."""

    def batch_limits(self) -> tuple[int, int]:
        """(min, max) batch one run() accepts; the file's metadata unless the backend knows better
        (a TensorRT engine's optimization profile)."""
        return self.info.batch

    def describe(self) -> str:
        return f"{self.name} ({self.device or 'default device'})"
