"""EfficientDet anchors in numpy, shared by the runtime, the PyTorch reference and the export.

Order (DESIGN §2): levels min..max concatenated; inside a level row-major over (y, x); at each
position the anchors of scale octave s (outer) and aspect ratio a (inner), exactly as effdet's
DetBenchPredict flattens its NHWC head outputs. Boxes are x1, y1, x2, y2 in input pixels.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def feature_sizes(image_size: tuple[int, int], max_level: int) -> list[tuple[int, int]]:
    """Feature map (H, W) for levels 0..max_level: every stride-2 step gives ceil(n / 2)."""
    h, w = image_size
    sizes = [(h, w)]
    for _ in range(max_level):
        h, w = (h - 1) // 2 + 1, (w - 1) // 2 + 1
        sizes.append((h, w))
    return sizes


def aspect_pairs(aspect_ratios: Sequence) -> list[tuple[float, float]]:
    """(x, y) multipliers; a scalar ratio r becomes (sqrt(r), 1/sqrt(r)) as in effdet."""
    pairs = []
    for a in aspect_ratios:
        if isinstance(a, (tuple, list)):
            pairs.append((float(a[0]), float(a[1])))
        else:
            ax = float(np.sqrt(a))
            pairs.append((ax, 1.0 / ax))
    return pairs


def generate_anchors(image_size: tuple[int, int], min_level: int, max_level: int, num_scales: int,
                     aspect_ratios: Sequence, anchor_scale: float) -> np.ndarray:
    """All anchors, float32 [N, 4] x1, y1, x2, y2 in input pixels (computed in float64 first)."""
    h, w = image_size
    sizes = feature_sizes(image_size, max_level)
    levels = []
    for level in range(min_level, max_level + 1):
        fh, fw = sizes[level]
        stride_y, stride_x = h / fh, w / fw
        cy = np.arange(stride_y / 2, h, stride_y)[:fh]
        cx = np.arange(stride_x / 2, w, stride_x)[:fw]
        yy, xx = np.meshgrid(cy, cx, indexing="ij")
        centers = np.stack([xx.reshape(-1), yy.reshape(-1)], axis=1)  # [P, 2] x, y
        half = []
        for octave in range(num_scales):
            for ax, ay in aspect_pairs(aspect_ratios):
                base = anchor_scale * 2 ** (octave / num_scales)
                half.append((base * stride_x * ax / 2.0, base * stride_y * ay / 2.0))
        half_arr = np.asarray(half)  # [A, 2]
        boxes = np.concatenate([centers[:, None] - half_arr[None], centers[:, None] + half_arr[None]], -1)
        levels.append(boxes.reshape(-1, 4))
    return np.concatenate(levels, 0).astype(np.float32)


def num_anchors(image_size: tuple[int, int], min_level: int, max_level: int, per_location: int) -> int:
    """N for an input size: sum over levels of H*W*anchors-per-location."""
    sizes = feature_sizes(image_size, max_level)
    return sum(sizes[lv][0] * sizes[lv][1] for lv in range(min_level, max_level + 1)) * per_location
