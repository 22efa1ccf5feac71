"""Letterbox pre/post-processing, as effdet's evaluation transform: resize keeping the aspect ratio so
the image fits the network input, place it top-left, pad the rest with the mean color.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from runtime.errors import DeployError


@dataclass(frozen=True)
class Letterbox:
    """How one original image maps into the network input: input = original * scale (top-left)."""

    scale: float
    original_hw: tuple[int, int]
    input_hw: tuple[int, int]


def check_image(image: object) -> np.ndarray:
    """An HxWx3 uint8 RGB array (a PIL image is converted to RGB), or one clear error naming what is wrong."""
    if isinstance(image, Image.Image):
        from runtime.image_io import pil_to_rgb

        return pil_to_rgb(image)
    if not isinstance(image, np.ndarray):
        raise DeployError(f"image must be a numpy array HxWx3 uint8 RGB or a PIL image, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] == 0 or image.shape[1] == 0:
        raise DeployError(f"image must be HxWx3 (RGB), got shape {image.shape}")
    if image.dtype != np.uint8:
        raise DeployError(f"image must be uint8, got {image.dtype}")
    return image


def letterbox(image: np.ndarray, input_hw: tuple[int, int], fill: tuple[float, float, float]) -> tuple[np.ndarray, Letterbox]:
    """HxWx3 uint8 -> (input_h x input_w x 3 uint8, Letterbox); bilinear resize, top-left placement."""
    image = check_image(image)
    h, w = image.shape[:2]
    scale = min(input_hw[0] / h, input_hw[1] / w)
    nh, nw = max(1, min(input_hw[0], round(h * scale))), max(1, min(input_hw[1], round(w * scale)))
    canvas = np.empty((*input_hw, 3), np.uint8)
    canvas[:] = np.clip(np.round(fill), 0, 255).astype(np.uint8)
    resized = image if (nh, nw) == (h, w) else np.asarray(Image.fromarray(image).resize((nw, nh), Image.BILINEAR))
    canvas[:nh, :nw] = resized
    return canvas, Letterbox(scale, (h, w), tuple(input_hw))  # type: ignore[arg-type]


def to_original(boxes: np.ndarray, lb: Letterbox) -> np.ndarray:
    """[K,4] xyxy boxes in network-input pixels -> original image pixels, clipped to the image."""
    out = boxes.astype(np.float32) / np.float32(lb.scale)
    h, w = lb.original_hw
    out[:, 0::2] = np.clip(out[:, 0::2], 0, w)
    out[:, 1::2] = np.clip(out[:, 1::2], 0, h)
    return out
