"""Reads a COCO annotation file and checks the structure eval and infer rely on, so a bad file is one
DeployError naming the file and its first offending entry (e.g. `annotations[3].bbox`) before any model
runs or anything is written, instead of a traceback from deep inside pycocotools, or silently dropped
boxes that change the AP."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from runtime.errors import DeployError


def load_annotations(path: str | Path) -> dict[str, Any]:
    """A COCO annotation file as a dict, checked by check_coco; DeployError naming the file when it is not one."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise DeployError(f"{path}: not a readable JSON file ({e})") from None
    if not isinstance(data, dict) or not all(k in data for k in ("images", "annotations", "categories")):
        raise DeployError(f"{path}: not COCO format (needs images, annotations, categories)")
    check_coco(data, path)
    return data


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _entries(data: dict[str, Any], key: str, path: Path) -> list[dict[str, Any]]:
    """data[key] as a list of objects, or DeployError naming the first entry that is not one."""
    entries = data[key]
    if not isinstance(entries, list):
        raise DeployError(f"{path}: {key} must be a list, got {type(entries).__name__}")
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise DeployError(f"{path}: {key}[{i}] must be an object, got {entry!r:.60}")
    return entries


def _unique_int_ids(entries: list[dict[str, Any]], key: str, path: Path) -> set[int]:
    """The int "id" of every entry; DeployError on the first missing, non-int or repeated one."""
    first: dict[int, int] = {}
    for i, entry in enumerate(entries):
        value = entry.get("id")
        if not _is_int(value):
            raise DeployError(f"{path}: {key}[{i}].id must be an integer, got {value!r:.60}")
        if value in first:
            raise DeployError(f"{path}: {key}[{i}].id {value} repeats {key}[{first[value]}].id")
        first[value] = i
    return set(first)


def _check_strings(entries: list[dict[str, Any]], key: str, field: str, path: Path, unique: bool = False) -> None:
    """Every entry's `field` a string; with `unique`, DeployError on the first repeated one."""
    first: dict[str, int] = {}
    for i, entry in enumerate(entries):
        value = entry.get(field)
        if not isinstance(value, str):
            raise DeployError(f"{path}: {key}[{i}].{field} must be a string, got {value!r:.60}")
        if unique and value in first:
            raise DeployError(f"{path}: {key}[{i}].{field} {value!r:.60} repeats {key}[{first[value]}].{field} "
                              "(one image listed twice would be detected and scored twice)")
        first.setdefault(value, i)


def _check_annotation(i: int, a: dict[str, Any], image_ids: set[int], category_ids: set[int], path: Path) -> None:
    """One annotation: known image and category, a box of 4 finite numbers with w, h >= 0, optional iscrowd/area."""
    where = f"{path}: annotations[{i}]"
    if not _is_int(a.get("image_id")) or a["image_id"] not in image_ids:
        raise DeployError(f"{where}.image_id {a.get('image_id')!r:.60} is not an id in images")
    if not _is_int(a.get("category_id")) or a["category_id"] not in category_ids:
        listed = "none listed" if not category_ids else f"ids {sorted(category_ids)}"[:60]
        raise DeployError(f"{where}.category_id {a.get('category_id')!r:.60} is not an id in categories ({listed})")
    box = a.get("bbox")
    if not (isinstance(box, list) and len(box) == 4 and all(map(_is_number, box)) and min(box[2], box[3]) >= 0):
        raise DeployError(f"{where}.bbox must be 4 finite numbers [x, y, w, h] with w, h >= 0, got {box!r:.80}")
    if "iscrowd" in a and a["iscrowd"] not in (0, 1):
        raise DeployError(f"{where}.iscrowd must be 0 or 1, got {a['iscrowd']!r:.60}")
    if "area" in a and not (_is_number(a["area"]) and a["area"] >= 0):
        raise DeployError(f"{where}.area must be a finite number >= 0, got {a['area']!r:.60}")


def check_coco(data: dict[str, Any], path: str | Path) -> None:
    """DeployError naming `path` and the first entry that breaks what we rely on: images with unique int ids
    and unique str file names, categories with unique int ids and names, annotations on those ids with a valid box."""
    path = Path(path)
    images = _entries(data, "images", path)
    categories = _entries(data, "categories", path)
    annotations = _entries(data, "annotations", path)
    image_ids = _unique_int_ids(images, "images", path)
    _check_strings(images, "images", "file_name", path, unique=True)
    category_ids = _unique_int_ids(categories, "categories", path)
    _check_strings(categories, "categories", "name", path)
    for i, a in enumerate(annotations):
        _check_annotation(i, a, image_ids, category_ids, path)


def nothing_to_evaluate(data: dict[str, Any]) -> str | None:
    """Why a checked dataset gives no meaningful mAP (no images, or no annotated objects), else None."""
    if not data["images"]:
        return "the annotation file lists no images"
    crowd = sum(1 for a in data["annotations"] if a.get("iscrowd"))
    if crowd == len(data["annotations"]):          # crowd regions are ignored by COCO's matching
        return (f"the annotation file has no annotated objects on its {len(data['images'])} images"
                + (f" (only {crowd} crowd regions, which COCO does not score)" if crowd else ""))
    return None
