"""Box decoding (effdet / TF RetinaNet coding) in numpy.

Regressions come in effdet's (ty, tx, th, tw) order; anchors and results are x1, y1, x2, y2.
"""
from __future__ import annotations

import numpy as np


def decode_boxes(regression: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """[..., N, 4] (ty, tx, th, tw) + [N, 4] xyxy anchors -> [..., N, 4] float32 xyxy boxes."""
    anchors = anchors.astype(np.float32)
    wa = anchors[:, 2] - anchors[:, 0]
    ha = anchors[:, 3] - anchors[:, 1]
    xa = (anchors[:, 0] + anchors[:, 2]) / 2
    ya = (anchors[:, 1] + anchors[:, 3]) / 2
    ty, tx, th, tw = (regression[..., i].astype(np.float32) for i in range(4))
    w = np.exp(tw) * wa
    h = np.exp(th) * ha
    xc = tx * wa + xa
    yc = ty * ha + ya
    return np.stack([xc - w / 2, yc - h / 2, xc + w / 2, yc + h / 2], axis=-1).astype(np.float32)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of [M, 4] x [K, 4] xyxy boxes -> [M, K]; degenerate boxes have area 0 (IoU 0)."""
    a = a.astype(np.float32)
    b = b.astype(np.float32)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0).astype(np.float32)
