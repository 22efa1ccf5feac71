"""Reference post-processing with the exact semantics of TensorRT's `EfficientNMS_TRT` plugin, in numpy.

One definition serves the PyTorch reference, the runtime and the CPU stand-in for the plugin node in
ONNX Runtime. Semantics (plugin v1, TensorRT 8.6-10.x `efficientNMSInference.cu`):

1. keep (anchor, class) elements with score >= score_threshold (on sigmoid scores when
   score_activation; the plugin compares raw logits against logit(threshold)); skip background_class;
2. sort them by score, descending (ties: lower anchor*C+class index first), keep the first `top_k`
   (the plugin's numSelectedBoxes, 4096);
3. greedy NMS: walk the sorted list; a box not yet suppressed is kept (stop at max_output_boxes) and
   suppresses every later box of the same class (any class when class_agnostic) whose IoU with it is
   >= iou_threshold. IoU uses corner-reordered copies; degenerate boxes have IoU 0;
4. outputs padded with zeros: num_detections int32 [B,1], boxes float32 [B,K,4] (BoxCorner order of
   the input: x1,y1,x2,y2 for our graphs, not clipped), scores [B,K] (sigmoid applied when
   score_activation), classes int32 [B,K].

Fused box decoder (anchors given): box_coding 0 adds anchors to corners; box_coding 1 decodes
center-size (c + t*size, size*exp(t)) and returns corners.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from runtime.boxes import box_iou


@dataclass(frozen=True)
class NMSParams:
    """The plugin's attributes (names as in the ONNX node) plus its fixed pre-NMS top-k."""

    score_threshold: float = 0.001
    iou_threshold: float = 0.5
    max_output_boxes: int = 100
    background_class: int = -1
    score_activation: bool = True
    class_agnostic: bool = False
    box_coding: int = 0
    top_k: int = 4096


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Numerically safe logistic, float32."""
    x = x.astype(np.float32)
    return (0.5 * (np.tanh(0.5 * x) + 1.0)).astype(np.float32)


def _corners(boxes: np.ndarray, anchors: np.ndarray | None, box_coding: int) -> np.ndarray:
    """[N,4] plugin boxes (+ optional [N,4] anchors) -> [N,4] corners, as the plugin decodes them."""
    boxes = boxes.astype(np.float32)
    if anchors is None:
        if box_coding == 1:
            return _center_to_corners(boxes)
        return boxes
    anchors = anchors.astype(np.float32)
    if box_coding == 0:
        return _reordered(boxes) + _reordered(anchors)
    center = boxes[:, :2] * anchors[:, 2:] + anchors[:, :2]
    size = anchors[:, 2:] * np.exp(boxes[:, 2:])
    return _center_to_corners(np.concatenate([center, size], 1))


def _center_to_corners(b: np.ndarray) -> np.ndarray:
    half = b[:, 2:] * np.float32(0.5)
    return np.concatenate([b[:, :2] - half, b[:, :2] + half], 1)


def _reordered(b: np.ndarray) -> np.ndarray:
    """Corner boxes with min/max swapped into place (what the plugin does before IoU)."""
    return np.concatenate([np.minimum(b[:, :2], b[:, 2:]), np.maximum(b[:, :2], b[:, 2:])], 1)


def _select(scores: np.ndarray, p: NMSParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Threshold, drop background, sort descending (stable), cut to top_k -> anchor, class, score."""
    probs = sigmoid(scores) if p.score_activation else scores.astype(np.float32)
    flat = probs.reshape(-1)
    keep = np.nonzero(flat >= np.float32(p.score_threshold))[0]
    num_classes = scores.shape[1]
    if p.background_class >= 0:
        keep = keep[keep % num_classes != p.background_class]
    order = keep[np.argsort(-flat[keep], kind="stable")][: p.top_k]
    return order // num_classes, order % num_classes, flat[order]


def _greedy(boxes: np.ndarray, classes: np.ndarray, p: NMSParams) -> list[int]:
    """Indices (into the sorted candidates) kept by greedy NMS, at most max_output_boxes."""
    alive = np.ones(len(boxes), dtype=bool)
    kept: list[int] = []
    ordered = _reordered(boxes)
    for i in range(len(boxes)):
        if not alive[i]:
            continue
        if len(kept) >= p.max_output_boxes:
            break
        kept.append(i)
        rest = np.arange(i + 1, len(boxes))
        rest = rest[alive[rest]]
        if not p.class_agnostic:
            rest = rest[classes[rest] == classes[i]]
        if len(rest):
            iou = box_iou(ordered[i : i + 1], ordered[rest])[0]
            alive[rest[iou >= np.float32(p.iou_threshold)]] = False
    return kept


def efficient_nms(boxes: np.ndarray, scores: np.ndarray, anchors: np.ndarray | None = None,
                  params: NMSParams = NMSParams()) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """EfficientNMS_TRT on [B,N,4] boxes and [B,N,C] scores (+ [1|B,N,4] anchors) -> the 4 outputs."""
    batch, k = scores.shape[0], params.max_output_boxes
    num = np.zeros((batch, 1), np.int32)
    out_boxes = np.zeros((batch, k, 4), np.float32)
    out_scores = np.zeros((batch, k), np.float32)
    out_classes = np.zeros((batch, k), np.int32)
    for b in range(batch):
        anchor_idx, cls, score = _select(scores[b], params)
        anc = None if anchors is None else anchors[b if anchors.shape[0] > 1 else 0][anchor_idx]
        cand = _corners(boxes[b][anchor_idx], anc, params.box_coding)
        kept = _greedy(cand, cls, params)
        n = len(kept)
        num[b, 0] = n
        out_boxes[b, :n] = cand[kept]
        out_scores[b, :n] = score[kept]
        out_classes[b, :n] = cls[kept]
    return num, out_boxes, out_scores, out_classes
