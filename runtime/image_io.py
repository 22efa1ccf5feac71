"""Reading images from disk into HxWx3 uint8 RGB: the one reader behind infer, eval and calibration.

Grayscale, palette, CMYK and RGBA images are converted (alpha dropped); 16-bit images are scaled to 8
bits; EXIF orientation is applied. Unreadable files, and images over PIL's decompression-bomb limit (178 MP),
raise DeployError naming the file: callers skip and count them like corrupt ones.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from runtime.errors import DeployError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def read_image(path: str | Path) -> np.ndarray:
    """One image file -> HxWx3 uint8 RGB."""
    path = Path(path)
    try:
        with warnings.catch_warnings():
            # PIL's DecompressionBombWarning (89-178 MP: read anyway) and corrupt-EXIF notes were lines on stderr
            warnings.simplefilter("ignore")
            with Image.open(path) as im:
                im.load()
                return pil_to_rgb(ImageOps.exif_transpose(im))
    except FileNotFoundError:
        raise DeployError(f"{path}: file not found") from None
    except Image.DecompressionBombError as e:     # > 2x Image.MAX_IMAGE_PIXELS (178 MP): refused before decoding
        raise DeployError(f"{path}: image too large to read ({str(e).split(', could be')[0]})") from None
    except MemoryError:
        raise DeployError(f"{path}: image too large to read (out of memory decoding it)") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise DeployError(f"{path}: not a readable image ({str(e).splitlines()[0][:120]})") from None


def pil_to_rgb(im: Image.Image) -> np.ndarray:
    """A PIL image of any mode -> HxWx3 uint8 RGB (16-bit and float scaled to 8 bits, alpha dropped)."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im, dtype=np.float64)
        peak = 65535.0 if arr.max(initial=0) > 255 else 255.0
        im = Image.fromarray(np.clip(arr * (255.0 / peak), 0, 255).astype(np.uint8))
    elif im.mode == "F":
        im = Image.fromarray(np.clip(np.asarray(im), 0, 255).astype(np.uint8))
    return np.asarray(im.convert("RGB"))


def list_images(folder: str | Path) -> list[Path]:
    """Image files (by suffix) directly in or below `folder`, sorted; DeployError if none or no folder."""
    folder = Path(folder)
    if folder.is_file():
        return [folder]
    if not folder.is_dir():
        raise DeployError(f"{folder}: no such file or folder")
    # a broken link is listed too: read_image refuses it, and the caller counts it skipped like a corrupt file
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and not p.is_dir())
    if not files:
        raise DeployError(f"{folder}: no images found ({', '.join(IMAGE_SUFFIXES)})")
    return files
