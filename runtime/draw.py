"""Drawing detections on an image (Pillow only): boxes, class names and scores in a per-class colour.

Labels scale with the image (a fixed 10-px font is unreadable once a 4000x3000 picture is fitted to a
screen) and never overlap each other: the best-scoring detections are labelled first, each label takes the
first free place among the corners of its box (then further down or up the box), and a label with no free
place is left out - its box is still drawn.
"""
from __future__ import annotations

import colorsys
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from runtime.result import Detections

LABEL_FRACTION = 0.02      # label text height as a share of the image's long side
MIN_FONT_PX = 11           # small images keep a legible minimum


@dataclass(frozen=True)
class Label:
    """A placed label: its background rectangle (x1, y1, x2, y2) in image pixels, text and colour."""
    rect: tuple[float, float, float, float]
    text: str
    colour: tuple[int, int, int]


def class_colour(cls: int) -> tuple[int, int, int]:
    """A stable, well-separated colour per class (golden-ratio hue steps)."""
    r, g, b = colorsys.hsv_to_rgb((cls * 0.618033988749895) % 1.0, 0.85, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


def font_size(height: int, width: int) -> int:
    """Label font size in pixels for an image of this size."""
    return max(MIN_FONT_PX, round(max(height, width) * LABEL_FRACTION))


@lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _overlaps(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def layout_labels(shape: tuple[int, ...], det: Detections, names: tuple[str, ...] = ()) -> list[Label]:
    """Where each detection's label goes on an image of `shape` (H, W, ...): no two labels overlap, all
    inside the image; highest scores placed first, labels without a free place left out."""
    height, width = int(shape[0]), int(shape[1])
    font = _font(font_size(height, width))
    pad = max(1, font_size(height, width) // 8)
    placed: list[Label] = []
    for i in np.argsort(-np.asarray(det.scores), kind="stable"):
        cls, score = int(det.classes[i]), float(det.scores[i])
        text = f"{names[cls] if 0 <= cls < len(names) else cls} {score:.2f}"
        left, top, right, bottom = font.getbbox(text)
        w, h = right - left + 2 * pad, bottom - top + 2 * pad
        x1, y1, x2, y2 = (float(v) for v in det.boxes[i])
        starts = [(x1, y1 - h), (x1, y1), (x1, y2), (x1, y2 - h), (x2 - w, y1 - h), (x2 - w, y2)]
        steps = int(max(0.0, y2 - y1) // h) + 1
        starts += [(x1, y1 + k * h) for k in range(1, steps)] + [(x1, y1 - (k + 1) * h) for k in range(1, 4)]
        for sx, sy in starts:
            sx, sy = min(max(0.0, sx), max(0.0, width - w)), min(max(0.0, sy), max(0.0, height - h))
            rect = (sx, sy, sx + w, sy + h)
            if not any(_overlaps(rect, p.rect) for p in placed):
                placed.append(Label(rect, text, class_colour(cls)))
                break
    return placed


def draw_detections(image: np.ndarray, det: Detections, names: tuple[str, ...] = ()) -> Image.Image:
    """HxWx3 uint8 RGB + detections (original pixels) -> a PIL image with labelled boxes."""
    canvas = Image.fromarray(image).convert("RGB")
    draw = ImageDraw.Draw(canvas)
    width = max(1, round(max(image.shape[:2]) / 300))
    for box, cls in zip(det.boxes, det.classes):
        x1, y1, x2, y2 = (float(v) for v in box)
        draw.rectangle([x1, y1, x2, y2], outline=class_colour(int(cls)), width=width)
    size = font_size(image.shape[0], image.shape[1])
    font, pad = _font(size), max(1, size // 8)
    for label in layout_labels(image.shape, det, names):
        x1, y1, x2, y2 = label.rect
        draw.rectangle([x1, y1, x2 - 1, y2 - 1], fill=label.colour)   # PIL includes the end pixel
        left, top, _, _ = font.getbbox(label.text)
        draw.text((x1 + pad - left, y1 + pad - top), label.text, fill=(0, 0, 0), font=font)
    return canvas
