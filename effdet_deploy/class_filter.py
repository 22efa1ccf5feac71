"""`infer --classes 0,2` (Ultralytics' classes=[0, 2]): keep only some of the model's classes, named by index or
by the names the model file carries (`--classes circle,square`), for images and video, local or --server.

The filter acts on what the file's NMS kept. That NMS is class-aware, so a kept class's boxes are the same
with or without the filter; only --max-det is applied after it (the best N of the kept classes, not the best
N overall of which the kept classes are a part)."""
from __future__ import annotations

from typing import Any

import numpy as np

from runtime.errors import DeployError
from runtime.model_info import ModelInfo
from runtime.result import Detections
from runtime.thresholds import apply_filters, effective_filters


def split_classes(text: str) -> list[str]:
    """'0, 2,circle' -> ['0', '2', 'circle']; checked before the model loads (names need the model)."""
    items = [t.strip() for t in text.split(",")]
    if not text.strip() or any(not t for t in items):
        raise DeployError(f"--classes '{text}': give class indices or names separated by commas, e.g. 0,2 or "
                          "circle,square")
    return items


def _valid(info: ModelInfo) -> str:
    if info.class_names:
        return ", ".join(f"{i} {n}" for i, n in enumerate(info.class_names))
    return f"0 to {info.num_classes - 1}"


def resolve_classes(items: list[str], info: ModelInfo) -> tuple[int, ...]:
    """Indices or names -> sorted class indices of this model; one DeployError listing the valid ones."""
    by_name = {n.lower(): i for i, n in enumerate(info.class_names)}
    keep: set[int] = set()
    for item in items:
        if item.lower() in by_name:
            keep.add(by_name[item.lower()])
        elif item.lstrip("-").isdigit() and 0 <= int(item) < info.num_classes:
            keep.add(int(item))
        else:
            raise DeployError(f"--classes: {info.model} has no class '{item}' ({info.num_classes} classes: "
                              f"{_valid(info)})")
    return tuple(sorted(keep))


def keep_classes(det: Detections, keep: tuple[int, ...]) -> Detections:
    """The detections whose class is in `keep`, in their order."""
    mask = np.isin(det.classes, np.asarray(keep, np.int64))
    return Detections(det.boxes[mask], det.scores[mask], det.classes[mask])


class ClassFilter:
    """A detector (local Detector or --server's FilteredRemote, built without a max-detections cap) whose
    results keep only `keep` classes and then the best `max_det`. Everything else is the inner detector's."""

    def __init__(self, inner: Any, items: list[str], max_det: int | None) -> None:
        self.inner = inner
        try:
            self.keep = resolve_classes(items, inner.info)
            self.max_det = effective_filters(inner.info, None, None, max_det)[2]   # clamped to the file, warned
        except BaseException:
            inner.close()
            raise

    def __getattr__(self, name: str) -> Any:          # only for names ClassFilter does not have itself
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def detect(self, images: object) -> Any:
        found = self.inner.detect(images)
        if isinstance(found, Detections):
            return apply_filters(keep_classes(found, self.keep), None, None, self.max_det)
        return [apply_filters(keep_classes(d, self.keep), None, None, self.max_det) for d in found]

    def describe(self) -> str:
        names = ", ".join(self.inner.info.class_name(c) for c in self.keep)
        return f"classes {names}"

    def __enter__(self) -> "ClassFilter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.inner.close()
