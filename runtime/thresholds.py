"""The one score-threshold story: a default for the API, the CLI and the pipeline, and inference-time
filters that act within what the model file keeps.

A file's NMS (plugin, ONNX graph or numpy reference) already applied its own score threshold, IoU
threshold and detection cap (its metadata says which). Those are floors: a file exported at score 0.001
holds nothing below 0.001, and an overlap its NMS suppressed cannot come back. So at inference time we
can only narrow: a higher score threshold, a lower IoU threshold (a second class-aware NMS on the kept
boxes), fewer detections. Asking for more than the file keeps logs one warning (per Detector and value)
and uses the file's limit: the answer is still every detection the file can give, and the warning
names how to get more (export again with a lower --score-threshold / higher --iou-threshold / more
--max-detections). COCO mAP needs the low-score detections, so `eval` asks for score 0 ("all the file
keeps"), never this default.
"""
from __future__ import annotations

import numpy as np

from runtime.errors import DeployError
from runtime.log import logger
from runtime.model_info import ModelInfo
from runtime.nms import NMSParams, efficient_nms
from runtime.result import Detections

DEFAULT_SCORE_THRESHOLD = 0.3   # Detector, effdet.predict.detect, infer, bench, pipeline pictures


def check_filters(score_threshold: float | None, iou_threshold: float | None, max_detections: int | None) -> None:
    """Range checks (one DeployError line each): thresholds in [0, 1], max detections >= 1."""
    # named as on the command line and in the API, so either reader finds the knob
    for name, value in (("score threshold (--score-threshold, score_threshold)", score_threshold),
                        ("IoU threshold (--iou-threshold, iou_threshold)", iou_threshold)):
        if value is not None and not 0.0 <= float(value) <= 1.0:
            raise DeployError(f"{name} must be in [0, 1], got {value}")
    if max_detections is not None and (int(max_detections) != max_detections or max_detections < 1):
        raise DeployError(f"max detections (--max-detections, max_detections) must be an integer >= 1, got {max_detections}")


def effective_filters(info: ModelInfo, score: float | None, iou: float | None, max_det: int | None,
                      warned: set[str] | None = None) -> tuple[float | None, float | None, int | None]:
    """The filters that still do something, after clamping to the file (None = nothing to do).
    A request beyond what the file keeps is warned about once per entry added to `warned`."""
    warned = set() if warned is None else warned

    def warn(key: str, message: str) -> None:
        if key not in warned:
            warned.add(key)
            logger.warning(f"warning: {message}")

    if score is not None and 0.0 < score < info.score_threshold:
        warn(f"score{score}", f"score threshold {score:g} is below the file's NMS threshold {info.score_threshold:g}: "
             f"it keeps only scores >= {info.score_threshold:g} (export with a lower --score-threshold for more)")
    if iou is not None and iou > info.iou_threshold:
        warn(f"iou{iou}", f"IoU threshold {iou:g} is above the file's NMS IoU {info.iou_threshold:g}: overlaps it "
             f"suppressed stay suppressed (export with a higher --iou-threshold for more)")
    if max_det is not None and max_det > info.max_detections:
        warn(f"max{max_det}", f"max detections {max_det} is above the file's {info.max_detections}: "
             f"at most {info.max_detections} come out (export with more --max-detections)")
    return (score if score is not None and score > info.score_threshold else None,
            iou if iou is not None and iou < info.iou_threshold else None,
            max_det if max_det is not None and max_det < info.max_detections else None)


def apply_filters(det: Detections, score: float | None, iou: float | None, max_det: int | None) -> Detections:
    """Detections (any coordinates) -> those with score >= `score`, after class-aware NMS at `iou`,
    best `max_det` by score. None skips a filter."""
    order = np.argsort(-det.scores, kind="stable")
    if score is not None:
        order = order[det.scores[order] >= np.float32(score)]
    if iou is not None and len(order) > 1:
        order = order[_nms_keep(det.boxes[order], det.scores[order], det.classes[order], iou)]
    if max_det is not None:
        order = order[:max_det]
    return Detections(det.boxes[order], det.scores[order], det.classes[order])


def _nms_keep(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou: float) -> np.ndarray:
    """Indices kept by the project's one NMS (runtime.nms, plugin semantics) over score-sorted boxes. Each
    box gets its score in its own class column and -1 elsewhere, so the -0.5 threshold keeps exactly the
    real ones; the kept rows come out in input order, so walking both lists recovers their indices."""
    k = len(scores)
    columns = np.full((1, k, int(classes.max()) + 1), -1.0, np.float32)
    columns[0, np.arange(k), classes] = scores
    params = NMSParams(score_threshold=-0.5, iou_threshold=iou, max_output_boxes=k, score_activation=False, top_k=k)
    num, kept_boxes, _, kept_classes = efficient_nms(boxes[None].astype(np.float32), columns, None, params)
    indices, j = [], 0
    for box, cls in zip(kept_boxes[0, : int(num[0, 0])], kept_classes[0]):
        while not (classes[j] == cls and (boxes[j] == box).all()):
            j += 1
        indices.append(j)
        j += 1
    return np.asarray(indices, np.int64)
