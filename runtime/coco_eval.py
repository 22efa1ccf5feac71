"""COCO detection metrics (pycocotools) for Detections, with an explicit class-id mapping.

Model classes are 0-based; COCO category ids are whatever the annotation file says (1..80 with gaps for
COCO itself, 1..6 for the shapes set). `category_ids[c]` is the dataset id of model class c.
"""
from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any, Sequence

from runtime.atomic import write_atomic
from runtime.coco_annotations import load_annotations  # also imported from here by eval, infer and tests
from runtime.errors import DeployError
from runtime.lazy import lazy_import
from runtime.result import Detections

METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl")


CLASS_MAPS = ("auto", "sorted", "id")


def category_mapping(coco: dict[str, Any], num_classes: int | None = None, mode: str = "auto") -> list[int]:
    """Model class c -> dataset category id.

    sorted: the c-th category sorted by id (a model trained on exactly these categories, e.g. shapes);
    id: c + 1 (effdet's COCO checkpoints: 90 outputs in COCO's 1..90 id space, with its gaps);
    auto: id when the model has as many outputs as the largest category id and more than there are
    categories (COCO: 90 vs 80), else sorted.
    """
    ids = sorted(int(c["id"]) for c in coco["categories"])
    if mode not in CLASS_MAPS:
        raise DeployError(f"--class-map must be one of {', '.join(CLASS_MAPS)}, got {mode}")
    if mode == "auto":
        mode = "id" if num_classes is not None and num_classes == max(ids, default=0) > len(ids) else "sorted"
    return list(range(1, (num_classes or max(ids, default=0)) + 1)) if mode == "id" else ids


def to_coco_results(image_id: int | str, det: Detections, category_ids: Sequence[int]) -> list[dict[str, Any]]:
    """One image's detections in COCO results format (bbox = x, y, w, h in original pixels). image_id is
    the dataset's (int), or a file name where there is no dataset."""
    out = []
    for box, score, cls in zip(det.boxes, det.scores, det.classes):
        if not 0 <= int(cls) < len(category_ids):
            raise DeployError(f"model class {int(cls)} has no dataset category (the dataset has {len(category_ids)})")
        x1, y1, x2, y2 = (float(v) for v in box)
        out.append({"image_id": image_id if isinstance(image_id, str) else int(image_id), "category_id": int(category_ids[int(cls)]),
                    "bbox": [round(x1, 3), round(y1, 3), round(x2 - x1, 3), round(y2 - y1, 3)],
                    "score": round(float(score), 5)})
    return out


def coco_map(coco: dict[str, Any], results: list[dict[str, Any]]) -> dict[str, float | None]:
    """COCO AP / AP50 / AP75 / APs / APm / APl (bbox) of `results` against the annotation dict.
    None where pycocotools says -1: the dataset has no objects of that size (printed as n/a)."""
    coco_mod = lazy_import("pycocotools.coco", "pycocotools")
    eval_mod = lazy_import("pycocotools.cocoeval", "pycocotools")
    if not results:
        return {k: 0.0 for k in METRICS}
    with contextlib.redirect_stdout(io.StringIO()):
        gt = coco_mod.COCO()
        gt.dataset = {**coco, "annotations": [_scored_annotation(i, a) for i, a in enumerate(coco["annotations"])]}
        gt.createIndex()
        dt = gt.loadRes(results)
        ev = eval_mod.COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {k: None if v < 0 else float(v) for k, v in zip(METRICS, ev.stats[:6])}


def _scored_annotation(index: int, a: dict[str, Any]) -> dict[str, Any]:
    """An annotation as pycocotools reads it: a unique id, and iscrowd (0) and area (box w * h) where the
    file leaves them out (both optional in our format; pycocotools raises KeyError without them)."""
    return {"iscrowd": 0, "area": float(a["bbox"][2]) * float(a["bbox"][3]), **a, "id": index + 1}


def format_metric(value: float | None, digits: int = 3) -> str:
    """A metric for people: n/a where COCO has nothing to measure (None)."""
    return "n/a" if value is None else f"{value:.{digits}f}"


def detection_results(detect: Any, images: Sequence[Any], coco: dict[str, Any], batch: int = 8
                      ) -> list[dict[str, Any]]:
    """COCO results of `detect(list of HxWx3 uint8) -> list[Detections]` on images listed in coco order."""
    ids = [int(im["id"]) for im in coco["images"]]
    categories = category_mapping(coco)
    results: list[dict[str, Any]] = []
    for start in range(0, len(images), batch):
        chunk = list(images[start:start + batch])
        for image_id, det in zip(ids[start:start + batch], detect(chunk)):
            results.extend(to_coco_results(image_id, det, categories))
    return results


def evaluate_detector(detect: Any, images: Sequence[Any], coco: dict[str, Any], batch: int = 8
                      ) -> dict[str, float | None]:
    """COCO metrics of `detect(list of HxWx3 uint8) -> list[Detections]` on images listed in coco order."""
    return coco_map(coco, detection_results(detect, images, coco, batch))


def coco_map_of_parts(coco: dict[str, Any], results: list[dict[str, Any]], parts: int) -> list[dict[str, float | None]]:
    """coco_map of each of `parts` consecutive, equal groups of the dataset's images (the last takes the
    remainder): how much a metric moves between image sets of that size, measured on the same run."""
    images = coco["images"]
    if not 1 <= parts <= len(images):
        raise DeployError(f"parts must be between 1 and the {len(images)} images, got {parts}")
    size = len(images) // parts
    out = []
    for i in range(parts):
        group = images[i * size:(i + 1) * size if i + 1 < parts else len(images)]
        ids = {im["id"] for im in group}
        sub = {**coco, "images": group, "annotations": [a for a in coco["annotations"] if a["image_id"] in ids]}
        out.append(coco_map(sub, [r for r in results if r["image_id"] in ids]))
    return out


class NothingToEvaluate(DeployError):
    """No mAP can be measured on what could be read (every image unreadable, or no object left on the readable
    ones): eval reports INCONCLUSIVE (exit 3) and writes nothing, elsewhere it is one error line."""


def evaluate_files(model: str, images_dir: Path, annotations: Path, results_path: Path, backend: str | None = None,
                   device: str | None = None, options: dict[str, Any] | None = None, batch: int = 8,
                   class_map: str = "auto", coco: dict[str, Any] | None = None,
                   skipped: list[str] | None = None) -> dict[str, float | None]:
    """Run a model file over a COCO dataset on disk (with progress), return metrics, then write COCO results
    (only once everything succeeded, atomically). Every detection the file keeps is scored (score threshold
    0: mAP needs the low-score ones), never the Detector's display default. `coco`: the already loaded and
    checked `annotations`, so callers that looked at it first do not read it twice. Unreadable or oversized images
    are skipped with one line each and left out of the mAP with their objects (a file that cannot be read is not
    a missed detection); the denominator is printed, their names go to `skipped` where given."""
    from runtime.detector import Detector

    coco = load_annotations(annotations) if coco is None else coco
    names = {int(c["id"]): c.get("name", "") for c in coco["categories"]}
    gone: list[dict[str, Any]] = []
    with Detector(model, backend=backend, device=device, score_threshold=0.0, **(options or {})) as det:
        categories = category_mapping(coco, det.info.num_classes, class_map)
        if det.info.num_classes != len(categories):
            print(f"note: model has {det.info.num_classes} classes, the mapping covers {len(categories)}")
        print("class mapping: " + ", ".join(f"{c}->{cid} ({names.get(cid, 'not in dataset')})"
                                            for c, cid in enumerate(categories[:8]))
              + (" ..." if len(categories) > 8 else ""))
        results = _detect_files(det, coco["images"], images_dir, batch, categories, gone)
    if gone:
        coco = without_images(coco, gone, images_dir)
        if skipped is not None:
            skipped.extend(str(e["file_name"]) for e in gone)
    metrics = coco_map(coco, results)
    results_path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(results_path, json.dumps(results))
    return metrics


def _detect_files(det: Any, entries: list[dict[str, Any]], images_dir: Path, batch: int, categories: list[int],
                  skipped: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """COCO results of every readable image, `batch` at a time, on a progress bar; unreadable ones go to `skipped`."""
    from runtime.image_io import read_image
    from runtime.progress import progress_bar

    results: list[dict[str, Any]] = []
    with progress_bar("eval", len(entries), unit="image") as bar:
        for start in range(0, len(entries), batch):
            chunk, pixels = [], []
            for entry in entries[start:start + batch]:
                try:
                    pixels.append(read_image(images_dir / str(entry["file_name"])))
                    chunk.append(entry)
                except DeployError as e:          # unreadable or oversized: skipped and counted, as infer does
                    skipped.append(entry)
                    bar.clear()
                    print(f"eval: skipped: {e}", flush=True)
            for entry, d in zip(chunk, det.detect(pixels) if pixels else []):
                results.extend(to_coco_results(int(entry["id"]), d, categories))
            bar.update(len(entries[start:start + batch]))
    return results


def without_images(coco: dict[str, Any], skipped: list[dict[str, Any]], images_dir: Path) -> dict[str, Any]:
    """The dataset minus images that could not be read (and their annotations), with the denominator printed: an
    unreadable file must not count as a missed detection. Nothing left to measure: NothingToEvaluate."""
    from runtime.coco_annotations import nothing_to_evaluate

    gone = {e["id"] for e in skipped}
    images = [e for e in coco["images"] if e["id"] not in gone]
    kept = [a for a in coco["annotations"] if a["image_id"] not in gone]
    names = ", ".join(str(e["file_name"]) for e in skipped[:3]) + (" ..." if len(skipped) > 3 else "")
    if not images:
        raise NothingToEvaluate(f"{images_dir}: none of the {len(gone)} images could be read (first: "
                                f"{skipped[0]['file_name']})")
    rest = {**coco, "images": images, "annotations": kept}
    why = nothing_to_evaluate(rest)
    if why is not None:
        raise NothingToEvaluate(f"{images_dir}: {len(gone)} unreadable image(s) skipped ({names}); on the "
                                f"{len(images)} readable: {why.replace('the annotation file has ', '')}")
    print(f"eval: skipped {len(gone)} unreadable image(s) ({names}): the mAP is over the {len(images)} of "
          f"{len(coco['images'])} images that could be read, their {len(coco['annotations']) - len(kept)} "
          f"annotated object(s) left out (not counted as missed)")
    return rest
