"""Drawing detections on an image (Pillow only): boxes, class names and scores in a per-class colour."""
from __future__ import annotations

import colorsys

import numpy as np
from PIL import Image, ImageDraw

from runtime.result import Detections


def class_colour(cls: int) -> tuple[int, int, int]:
    """A stable, well-separated colour per class (golden-ratio hue steps)."""
    r, g, b = colorsys.hsv_to_rgb((cls * 0.618033988749895) % 1.0, 0.85, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


def draw_detections(image: np.ndarray, det: Detections, names: tuple[str, ...] = ()) -> Image.Image:
    """HxWx3 uint8 RGB + detections (original pixels) -> a PIL image with labelled boxes."""
    canvas = Image.fromarray(image).convert("RGB")
    draw = ImageDraw.Draw(canvas)
    width = max(1, round(max(image.shape[:2]) / 300))
    for box, score, cls in zip(det.boxes, det.scores, det.classes):
        colour = class_colour(int(cls))
        x1, y1, x2, y2 = (float(v) for v in box)
        draw.rectangle([x1, y1, x2, y2], outline=colour, width=width)
        label = f"{names[int(cls)] if 0 <= int(cls) < len(names) else int(cls)} {score:.2f}"
        tx, ty = x1, max(0.0, y1 - 12)
        left, top, right, bottom = draw.textbbox((tx, ty), label)
        draw.rectangle([left - 1, top - 1, right + 1, bottom + 1], fill=colour)
        draw.text((tx, ty), label, fill=(0, 0, 0))
    return canvas
