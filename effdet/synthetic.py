"""A synthetic detection dataset: coloured shapes on textured, noisy backgrounds, deterministic per seed.

Why: no pretrained weights can be downloaded here, yet FP16/INT8 and the demo need a detector whose
detections mean something. Image i of seed s is drawn from `np.random.default_rng([s, i])`, so any
single image can be regenerated alone and the set does not depend on how many images are asked for.
Boxes are the tight xyxy bounds of the drawn shape in pixels (exclusive right/bottom edge, COCO style).
Numpy + Pillow only: the runtime, the trainer and the tests share it.
"""
from __future__ import annotations

import io
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from effdet.config import SHAPES_CLASSES as CLASS_NAMES
from runtime.atomic import write_atomic
from runtime.boxes import box_iou
from runtime.errors import DeployError
from runtime.progress import progress_bar


@dataclass(frozen=True)
class SynthSpec:
    """What a generated image looks like; the defaults are what `shapes_d0` was trained on."""

    height: int = 256
    width: int = 256
    min_objects: int = 1
    max_objects: int = 6
    min_size: float = 20.0      # shape extent in pixels (circumscribed diameter)
    max_size: float = 100.0
    max_overlap: float = 0.15   # IoU above which a new shape is re-drawn elsewhere
    noise: float = 8.0          # std of per-pixel Gaussian noise, 0-255 scale


MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 32, 2048  # shapes are 20-100 px; the largest EfficientDet input is 1536 (D7)


def check_image_size(size: int, flag: str = "--image-size") -> None:
    """One line for a size no generated scene (or training run) can use; 100000 asked numpy for 149 GiB."""
    if not MIN_IMAGE_SIZE <= size <= MAX_IMAGE_SIZE:
        raise DeployError(f"{flag} must be {MIN_IMAGE_SIZE} to {MAX_IMAGE_SIZE}, got {size}")


def check_seed(seed: int, flag: str = "--seed") -> None:
    """numpy's generators take seeds >= 0 and torch's below 2**64: one range for both."""
    if not 0 <= seed < 2**64:
        raise DeployError(f"{flag} must be 0 to 2**64 - 1, got {seed}")


def check_fresh_folder(output: str | Path, flag: str = "--output") -> None:
    """A dataset is written into a new or empty folder only: writing over one would replace its
    annotations.json and leave its old images behind, no longer listed."""
    out = Path(output)
    if out.is_file():
        raise DeployError(f"{output}: {flag} is a file; give a folder")
    if out.is_dir() and any(out.iterdir()):
        raise DeployError(f"{output}: {flag} is not empty; give a new or empty folder (nothing was written)")


@dataclass(frozen=True)
class Sample:
    image: np.ndarray    # [H, W, 3] uint8 RGB
    boxes: np.ndarray    # [K, 4] float32 xyxy pixels
    classes: np.ndarray  # [K] int64, 0-based index into CLASS_NAMES


def _unit_outline(name: str) -> np.ndarray:
    """Polygon vertices of a shape inside the unit circle, [V, 2] (x, y)."""
    def ring(n: int, radius: float = 1.0, phase: float = 0.0) -> np.ndarray:
        a = phase + np.arange(n) * 2 * math.pi / n
        return np.stack([radius * np.cos(a), radius * np.sin(a)], axis=1)

    if name == "circle":
        return ring(64)
    if name == "square":
        return ring(4, phase=math.pi / 4)
    if name == "triangle":
        return ring(3, phase=-math.pi / 2)
    if name == "hexagon":
        return ring(6)
    if name == "star":
        outer, inner = ring(5, 1.0, -math.pi / 2), ring(5, 0.42, -math.pi / 2 + math.pi / 5)
        return np.stack([outer, inner], axis=1).reshape(-1, 2)
    if name == "cross":
        t = 0.33
        pts = [(t, 1), (t, t), (1, t), (1, -t), (t, -t), (t, -1), (-t, -1), (-t, -t), (-1, -t), (-1, t), (-t, t),
               (-t, 1)]
        return np.asarray(pts, dtype=np.float64) / math.hypot(1, t)
    raise ValueError(name)


OUTLINES = {name: _unit_outline(name) for name in CLASS_NAMES}


def _background(rng: np.random.Generator, spec: SynthSpec) -> np.ndarray:
    """A smooth colour gradient, faint stripes and blotches: texture a detector must learn to ignore."""
    h, w = spec.height, spec.width
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    c0, c1 = rng.uniform(30, 225, 3), rng.uniform(30, 225, 3)
    angle = rng.uniform(0, 2 * math.pi)
    t = ((xx * math.cos(angle) + yy * math.sin(angle)) / max(h, w) + 1) / 2
    img = c0[None, None] * (1 - t[..., None]) + c1[None, None] * t[..., None]
    freq, phase, amp = rng.uniform(0.02, 0.15), rng.uniform(0, 2 * math.pi), rng.uniform(0, 25)
    a2 = rng.uniform(0, math.pi)
    img += amp * np.sin(freq * (xx * math.cos(a2) + yy * math.sin(a2)) + phase)[..., None]
    return img


def _blotches(rng: np.random.Generator, spec: SynthSpec, draw: ImageDraw.ImageDraw) -> None:
    """Elongated ellipses (axis ratio >= 2.5) as distractors: shape-like, but never one of the classes."""
    a = np.linspace(0, 2 * math.pi, 48, endpoint=False)
    for _ in range(rng.integers(0, 6)):
        rx = rng.uniform(8, 40)
        ry = rx / rng.uniform(2.5, 5)
        rot = rng.uniform(0, math.pi)
        x, y = rx * np.cos(a), ry * np.sin(a)
        cx, cy = rng.uniform(0, spec.width), rng.uniform(0, spec.height)
        pts = [(float(cx + xi * math.cos(rot) - yi * math.sin(rot)), float(cy + xi * math.sin(rot) + yi * math.cos(rot)))
               for xi, yi in zip(x, y)]
        draw.polygon(pts, fill=tuple(int(v) for v in rng.uniform(30, 225, 3)))


def _place(rng: np.random.Generator, spec: SynthSpec, taken: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray] | None:
    """(class index, polygon [V,2]) of a new shape that overlaps earlier ones little, or None."""
    for _ in range(20):
        cls = int(rng.integers(len(CLASS_NAMES)))
        size = math.exp(rng.uniform(math.log(spec.min_size), math.log(spec.max_size)))
        aspect = rng.uniform(0.75, 1.33) if CLASS_NAMES[cls] != "circle" else 1.0
        rot = rng.uniform(0, 2 * math.pi)
        pts = OUTLINES[CLASS_NAMES[cls]] * np.array([aspect, 1 / aspect]) * size / 2
        pts = pts @ np.array([[math.cos(rot), math.sin(rot)], [-math.sin(rot), math.cos(rot)]])
        lo, hi = pts.min(0), pts.max(0)
        cx = rng.uniform(-lo[0], spec.width - hi[0]) if spec.width > hi[0] - lo[0] else spec.width / 2
        cy = rng.uniform(-lo[1], spec.height - hi[1]) if spec.height > hi[1] - lo[1] else spec.height / 2
        pts = pts + np.array([cx, cy])
        box = np.concatenate([pts.min(0), pts.max(0)])[None]
        if not taken or box_iou(box, np.stack(taken)).max() <= spec.max_overlap:
            return np.asarray([cls]), pts
    return None


def _contrasting_colour(rng: np.random.Generator, under: np.ndarray) -> tuple[int, int, int]:
    for _ in range(50):
        colour = rng.uniform(0, 255, 3)
        if np.abs(colour - under).sum() > 150:
            break
    return int(colour[0]), int(colour[1]), int(colour[2])


def render(seed: int, index: int, spec: SynthSpec = SynthSpec()) -> Sample:
    """Image `index` of the set made from `seed`: the same pixels and boxes on every machine."""
    rng = np.random.default_rng([seed, index])
    canvas = Image.fromarray(np.clip(_background(rng, spec), 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    _blotches(rng, spec, draw)
    boxes: list[np.ndarray] = []
    classes: list[int] = []
    for _ in range(int(rng.integers(spec.min_objects, spec.max_objects + 1))):
        placed = _place(rng, spec, boxes)
        if placed is None:
            continue
        cls, pts = placed
        under = np.asarray(canvas, dtype=np.float32)[int(np.clip(pts[:, 1].mean(), 0, spec.height - 1)),
                                                      int(np.clip(pts[:, 0].mean(), 0, spec.width - 1))]
        draw.polygon([(float(x), float(y)) for x, y in pts], fill=_contrasting_colour(rng, under))
        boxes.append(np.concatenate([pts.min(0), pts.max(0)]))
        classes.append(int(cls[0]))
    canvas = canvas.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(0, 0.8))))
    pixels = np.asarray(canvas, dtype=np.float32) + rng.normal(0, spec.noise, (spec.height, spec.width, 3))
    image = np.clip(pixels, 0, 255).astype(np.uint8)
    limits = np.array([0, 0, spec.width, spec.height], dtype=np.float32)
    box_arr = np.clip(np.asarray(boxes, np.float32).reshape(-1, 4), 0, limits[[2, 3, 2, 3]])
    return Sample(image, box_arr, np.asarray(classes, np.int64))


def coco_categories() -> list[dict[str, object]]:
    """COCO categories: category_id = class index + 1 (COCO ids start at 1; the model's classes at 0)."""
    return [{"id": i + 1, "name": name, "supercategory": "shape"} for i, name in enumerate(CLASS_NAMES)]


Scene = tuple[np.ndarray, dict[str, object], list[dict[str, object]]]   # pixels, COCO image, its annotations


def scenes(seed: int, images: int, spec: SynthSpec = SynthSpec(), progress: bool = False) -> Iterator[Scene]:
    """Image 0..n-1 of `seed` one at a time with its COCO records (image ids 1..n, annotation ids counting on
    across images, category = class + 1): the one rendering loop of the in-memory set and of `synth`.
    The counts, seed and size are checked here, before the first image is rendered."""
    if images < 1:
        raise DeployError(f"--images must be at least 1, got {images}")
    check_seed(seed)
    check_image_size(spec.height)
    check_image_size(spec.width)
    return _scenes(seed, images, spec, progress)


def _scenes(seed: int, images: int, spec: SynthSpec, progress: bool) -> Iterator[Scene]:
    next_id = 1
    with progress_bar("synth", images, "image", show=progress) as bar:
        for i in range(images):
            sample = render(seed, i, spec)
            record: dict[str, object] = {"id": i + 1, "file_name": f"{seed}_{i:06d}.png", "height": spec.height,
                                         "width": spec.width}
            annotations: list[dict[str, object]] = []
            for box, cls in zip(sample.boxes, sample.classes):
                x1, y1, x2, y2 = (float(v) for v in box)
                annotations.append({"id": next_id + len(annotations), "image_id": i + 1,
                                    "category_id": int(cls) + 1, "bbox": [x1, y1, x2 - x1, y2 - y1],
                                    "area": (x2 - x1) * (y2 - y1), "iscrowd": 0})
            next_id += len(annotations)
            yield sample.image, record, annotations
            bar.update()


def coco_dataset(seed: int, images: int, spec: SynthSpec = SynthSpec(), progress: bool = False
                 ) -> tuple[list[np.ndarray], dict[str, list[dict[str, object]]]]:
    """`images` rendered images, all in memory, and their COCO annotation dict (see `scenes`)."""
    pixels: list[np.ndarray] = []
    coco: dict[str, list[dict[str, object]]] = {"images": [], "annotations": [], "categories": coco_categories()}
    for image, record, annotations in scenes(seed, images, spec, progress):
        pixels.append(image)
        coco["images"].append(record)
        coco["annotations"].extend(annotations)
    return pixels, coco


def write_dataset(output: str | Path, images: int, seed: int, spec: SynthSpec = SynthSpec(),
                  progress: bool = True) -> Path:
    """Write PNGs to OUTPUT/images and COCO annotations to OUTPUT/annotations.json (returned). One image is
    held at a time (100,000 images need no more memory than one, beside their annotation records); each PNG
    and then annotations.json are written atomically, and a failure part-way removes the PNGs this call created."""
    stream = scenes(seed, images, spec, progress)        # bad counts, seed or size: nothing written
    folder = Path(output) / "images"
    created = [p for p in (folder, *folder.parents) if not p.exists()]      # innermost first
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    coco: dict[str, list[dict[str, object]]] = {"images": [], "annotations": [], "categories": coco_categories()}
    try:
        for image, record, annotations in stream:
            png, target = io.BytesIO(), folder / str(record["file_name"])
            Image.fromarray(image).save(png, format="PNG")
            written += [] if target.exists() else [target]      # a file there before (a rerun) is not ours
            write_atomic(target, png.getvalue())
            coco["images"].append(record)
            coco["annotations"].extend(annotations)
        return write_atomic(folder.parent / "annotations.json", json.dumps(coco))
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        for made in created:                            # folders this call made, if left empty
            if made.is_dir() and not any(made.iterdir()):
                made.rmdir()
        raise


VALIDATION_SEED = 1  # training uses seed 0 (effdet-deploy train --seed); validation images never overlap


def evaluate_on_synthetic(detect: object, images: int, seed: int = VALIDATION_SEED, spec: SynthSpec = SynthSpec(),
                          batch: int = 8) -> dict[str, float]:
    """COCO metrics of `detect(list of images) -> list[Detections]` on freshly generated images."""
    from runtime.coco_eval import evaluate_detector

    pixels, coco = coco_dataset(seed, images, spec)
    return evaluate_detector(detect, pixels, coco, batch)
