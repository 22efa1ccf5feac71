"""The detection result every backend returns."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Detections:
    """boxes [K,4] float32 x1,y1,x2,y2 in original image pixels; scores [K] float32; classes [K] int64 (0-based)."""

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)

    @classmethod
    def from_padded(cls, num: int, boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray) -> "Detections":
        """From one row of the 4 NMS outputs (only the first `num` rows are valid)."""
        return cls(boxes[:num].astype(np.float32), scores[:num].astype(np.float32), classes[:num].astype(np.int64))
