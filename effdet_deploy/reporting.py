"""Building blocks shared by compare and pipeline: run a reference and targets on the same images,
judge parity, draw the worst image side by side."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
from PIL import Image, ImageDraw

from effdet_deploy.raw_outputs import raw_runner
from runtime.agreement import above
from runtime.detector import Detector
from runtime.draw import draw_detections
from runtime.model_info import ModelInfo
from runtime.parity import SCORE_FLOOR, ParityResult, RawParity, compare_detections, compare_raw
from runtime.progress import track
from runtime.result import Detections


@dataclass
class Comparison:
    """Parity results per target, the detections of every file (reference first), the reference's class names."""

    results: list[ParityResult]
    detections: list[list[Detections]]
    class_names: tuple[str, ...]


def detections_for(path: str, images: Sequence[np.ndarray], options: dict[str, Any] | None = None
                   ) -> tuple[list[Detections], ModelInfo]:
    """All images through one model file; returns the detections and what the file says about itself.
    options: backend options (for checkpoints: model=architecture, image_size=...)."""
    from runtime.progress import progress_bar

    found: list[Detections] = []
    with Detector(path, score_threshold=0.0, **(options or {})) as det, \
            progress_bar(f"{Path(path).name}: detections", len(images), unit="image") as bar:
        step = det.backend.batch_limits()[1]            # all the file keeps (threshold 0); parity filters
        for start in range(0, len(images), step):
            chunk = list(images[start:start + step])
            found.extend(det.detect(chunk))
            bar.update(len(chunk))
        return found, det.info


@dataclass
class Reference:
    """What targets are compared with: detections per image, the reference's contract, and its raw outputs."""

    name: str
    detections: list[Detections]
    info: ModelInfo
    raw: RawCache


def live_reference(reference: str, images: Sequence[np.ndarray], options: dict[str, Any] | None = None) -> Reference:
    """Run the reference (checkpoint, shipped name or file) on the images."""
    dets, info = detections_for(reference, images, options)
    return Reference(reference, dets, info, RawCache(reference, options, images))


def compare_targets(reference: str | Reference, targets: Sequence[str], images: Sequence[np.ndarray],
                    reference_options: dict[str, Any] | None = None, atol: float | None = None,
                    rtol: float | None = None, builtin_images: bool = False, threads: int | None = None) -> Comparison:
    """Both levels (raw outputs, detections) of every target against the reference, with warnings. threads: ONNX
    Runtime intra-op threads (torch threads for a checkpoint) of every session opened for a target."""
    ref = reference if isinstance(reference, Reference) else live_reference(reference, images, reference_options)
    comparison = Comparison([], [ref.detections], ref.info.class_names)
    for target in targets:
        dets, info = detections_for(target, images, cpu_options(target, threads))
        result = compare_detections(target, info.precision, ref.detections, dets, atol, rtol, builtin_images)
        result.warnings = mismatch_warnings(ref.info, info, builtin_images)
        raw, note = ref.raw.compare(target, info, result.limits, threads)
        result.add_raw(raw, note)
        comparison.results.append(result)
        comparison.detections.append(dets)
    return comparison


def cpu_options(path: str, threads: int | None) -> dict[str, Any]:
    """threads= for a file that runs on the CPU libraries (ONNX Runtime, PyTorch); none for a TensorRT engine,
    which has no CPU thread pool to size (and refuses the option)."""
    from runtime.detector import backend_for

    return {"threads": threads} if threads and backend_for(path) != "tensorrt" else {}


def distinct_labels(paths: Sequence[str]) -> list[str]:
    """The shortest path suffix that tells each file from the others (a/m.onnx and b/m.onnx, not m.onnx twice);
    just the file name where names differ. Files that exist are compared by their resolved paths."""
    parts = [Path(p).resolve().parts if Path(p).exists() else Path(p).parts for p in paths]
    labels = []
    for i, mine in enumerate(parts):
        others = [q for j, q in enumerate(parts) if j != i and q != mine]
        k = next((k for k in range(1, len(mine) + 1) if all(q[-k:] != mine[-k:] for q in others)), len(mine))
        labels.append(str(Path(*mine[-k:])))
    return labels


def file_keys(labels: Sequence[str]) -> list[str]:
    """Distinct file-name parts for per-target outputs (worst_<key>.png, layers_<key>.json): the label without its
    suffix, slashes as underscores (m, a_m); with the suffix where that alone differs (m.onnx / m.engine)."""
    def flat(text: str) -> str:
        return text.strip("/").replace("/", "_")

    stems = [flat(str(Path(label).with_suffix(""))) for label in labels]
    full = [flat(label) for label in labels]
    keys = [f if stems.count(k) > 1 and full.count(f) == 1 else k for k, f in zip(stems, full)]
    out: list[str] = []
    for key in keys:                   # a last resort for names that still meet (a_b/m vs a/b_m): a counter
        n, unique = 1, key
        while unique in out or (unique != key and unique in keys):
            n, unique = n + 1, f"{key}_{n + 1}"
        out.append(unique)
    return out


def mismatch_warnings(ref: ModelInfo, target: ModelInfo, builtin_images: bool) -> list[str]:
    """What makes a comparison less meaningful than it looks."""
    from effdet.config import SHAPES_CLASSES

    found = []
    if ref.num_classes != target.num_classes:
        found.append(f"reference has {ref.num_classes} classes, target {target.num_classes}: different class maps")
    if ref.image_size != target.image_size:
        found.append(f"reference input {ref.image_size[0]}x{ref.image_size[1]}, target "
                     f"{target.image_size[0]}x{target.image_size[1]}: raw outputs are not comparable")
    if builtin_images and not (ref.model.startswith("shapes") or set(ref.class_names) == set(SHAPES_CLASSES)):
        found.append(f"the built-in images are generated shapes scenes, and {ref.model} was not trained on them: "
                     "give --images with pictures of what the model detects")
    return found


class RawCache:
    """The reference's raw outputs, computed once (kept in memory when under ~1 GB, else recomputed per target),
    or read from a saved file (effdet_deploy/saved_outputs.py: `saved` yields them image by image)."""

    def __init__(self, reference: str, options: dict[str, Any] | None, images: Sequence[np.ndarray],
                 saved: Any = None) -> None:
        self.images = images
        self.kept: list[tuple[np.ndarray, np.ndarray]] | None = None
        self.saved = saved
        if saved is not None:
            self.runner, self.note = None, "" if saved.has_raw() else "raw outputs not compared: none saved"
            self.info: ModelInfo | None = saved.info
            return
        self.runner, self.note = raw_runner(reference, options)
        self.info = None if self.runner is None else self.runner.info
        if self.runner is not None:
            h, w = self.runner.info.image_size
            if h * w * 0.2 * (self.runner.info.num_classes + 4) * 4 * len(images) < 1e9:
                self.kept = list(track(self.runner.outputs(images), f"{Path(reference).name}: raw outputs",
                                       total=len(images), unit="image"))

    def outputs(self) -> Iterable[tuple[np.ndarray, np.ndarray]]:
        """(boxes [N,4], scores [N,C]) of each image."""
        if self.saved is not None:
            return self.saved.raw()
        assert self.runner is not None
        return self.kept if self.kept is not None else self.runner.outputs(self.images)

    def compare(self, target: str, info: ModelInfo, limits: dict[str, float | None], threads: int | None = None
                ) -> tuple[RawParity | None, str]:
        """(raw parity, "") or (None, why there is no raw level)."""
        ref = self.info
        if ref is None or self.note:
            return None, self.note
        if (ref.image_size, ref.num_classes) != (info.image_size, info.num_classes):
            return None, "raw outputs not compared: input size or class count differ"
        runner, note = raw_runner(target, cpu_options(target, threads))
        if runner is None:
            return None, note
        pairs = track(zip(self.outputs(), runner.outputs(self.images)), f"{Path(target).name}: raw outputs",
                      total=len(self.images), unit="image")
        return compare_raw(pairs, limits, info.image_size), ""


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


def worst_picture(comparison: Comparison, index: int, image: np.ndarray, titles: tuple[str, str]) -> Image.Image:
    """The worst image of target `index`: reference and target detections above the compare threshold, named."""
    result = comparison.results[index]
    i = result.worst_image
    left, right = comparison.detections[0][i], comparison.detections[index + 1][i]
    return side_by_side(image, above(left, SCORE_FLOOR), above(right, SCORE_FLOOR),
                        (f"{titles[0]} (score >= {SCORE_FLOOR})", titles[1]), comparison.class_names)
