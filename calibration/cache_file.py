"""The legacy TensorRT calibration cache on disk: read if present, written atomically (a half-written
cache would make the next build silently calibrate wrong)."""
from __future__ import annotations

from pathlib import Path

from runtime.atomic import write_atomic
from runtime.errors import DeployError


class CalibrationCache:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def read(self) -> bytes | None:
        """The cache's bytes, or None when there is none yet (TensorRT then calibrates)."""
        if not self.path.is_file():
            return None
        data = self.path.read_bytes()
        if not data:
            raise DeployError(f"{self.path}: empty calibration cache; delete it to recalibrate")
        return data

    def write(self, data: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, bytes(data))
