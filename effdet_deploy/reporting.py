"""Building blocks shared by compare and pipeline: run a reference and targets on the same images,
judge parity, draw the worst image side by side."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from PIL import Image, ImageDraw

from runtime.detector import Detector
from runtime.draw import draw_detections
from runtime.parity import ParityResult, compare_detections
from runtime.result import Detections


def detections_for(path: str, images: Sequence[np.ndarray], options: dict[str, Any] | None = None
                   ) -> tuple[list[Detections], str]:
    """All images through one model file; returns the detections and the file's precision.
    options: backend options (for checkpoints: model=architecture, image_size=...)."""
    with Detector(path, **(options or {})) as det:
        return list(det.detect(list(images))), det.info.precision


def compare_targets(reference: str, targets: Sequence[str], images: Sequence[np.ndarray],
                    reference_options: dict[str, Any] | None = None,
                    atol: float | None = None, rtol: float | None = None
                    ) -> tuple[list[ParityResult], list[list[Detections]]]:
    ref, _ = detections_for(reference, images, reference_options)
    results, all_dets = [], [ref]
    for target in targets:
        dets, precision = detections_for(target, images)
        results.append(compare_detections(target, precision, ref, dets, atol, rtol))
        all_dets.append(dets)
    return results, all_dets


def side_by_side(image: np.ndarray, left: Detections, right: Detections, titles: tuple[str, str],
                 names: tuple[str, ...] = ()) -> Image.Image:
    """Two drawings of the same image next to each other, with titles above."""
    a, b = draw_detections(image, left, names), draw_detections(image, right, names)
    canvas = Image.new("RGB", (a.width * 2 + 10, a.height + 20), (255, 255, 255))
    canvas.paste(a, (0, 20))
    canvas.paste(b, (a.width + 10, 20))
    draw = ImageDraw.Draw(canvas)
    draw.text((4, 4), titles[0], fill=(0, 0, 0))
    draw.text((a.width + 14, 4), titles[1], fill=(0, 0, 0))
    return canvas
