"""`infer --server`'s detector: a RemoteDetector whose results get the same client-side filters a local
Detector applies (score, IoU, max detections), so `infer` writes the same files either way. The server's own
score threshold (serve --score-threshold) is the floor, as the file's NMS threshold is for a local run."""
from __future__ import annotations

from typing import Any

from runtime.remote import RemoteDetector
from runtime.result import Detections
from runtime.thresholds import apply_filters, check_filters, effective_filters


class FilteredRemote(RemoteDetector):
    def __init__(self, url: str, model_name: str | None, score: float | None, iou: float | None,
                 max_det: int | None) -> None:
        check_filters(score, iou, max_det)
        super().__init__(url, model_name)
        self.filters = effective_filters(self.info, score, iou, max_det)

    def detect(self, images: object) -> Any:
        found = super().detect(images)
        if isinstance(found, Detections):
            return apply_filters(found, *self.filters)
        return [apply_filters(d, *self.filters) for d in found]
