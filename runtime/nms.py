"""Reference post-processing in numpy: the exact semantics of TensorRT's `EfficientNMS_TRT` plugin and of
our `--nms onnx` graph (export/postprocess.py), selected by `NMSParams.semantics`.

One definition serves the PyTorch reference, the runtime (`--nms none` files) and the CPU stand-in for
the plugin node in ONNX Runtime. Steps, per image:

1. score threshold, then a pre-NMS top-k over anchors x classes (`top_k`; the plugin's is 4096), sorted
   by score descending; background_class skipped;
2. greedy class-aware NMS over that sorted list: a candidate not yet suppressed is kept (stop at
   max_output_boxes) and suppresses every later candidate of its class (any class when class_agnostic)
   whose IoU with it passes iou_threshold. IoU on corner-reordered copies; degenerate boxes: IoU 0;
3. outputs padded with zeros: num_detections int32 [B,1], boxes float32 [B,K,4] (x1,y1,x2,y2 for our
   graphs, not clipped), scores [B,K] (sigmoid when score_activation), classes int32 [B,K].

semantics="plugin" (plugin v1, TensorRT 8.6-10.x `efficientNMSInference.cu`): keep sigmoid score >=
threshold; order ties by lower anchor*C+class; suppress at IoU >= threshold.
semantics="onnx" (what ONNX Runtime computes for our `--nms onnx` graph): keep logit >= logit(threshold);
select the top_k anchors by their best class logit (ties: lower anchor), then the top_k (anchor, class)
pairs among those rows (ties: earlier row, then lower class) - the graph's two TopK stages; suppress at
IoU > threshold (ONNX NonMaxSuppression). Both select the same set except at exact score ties.

Fast: nothing is computed over all anchors x classes except one max per anchor; sorting, decoding and
NMS touch only the selected candidates. Fused box decoder (anchors given): box_coding 0 adds anchors to
corners; box_coding 1 decodes center-size (c + t*size, size*exp(t)) and returns corners.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from runtime.boxes import box_iou

SEMANTICS = ("plugin", "onnx")
PLUGIN_TOP_K = 4096


@dataclass(frozen=True)
class NMSParams:
    """The plugin's attributes (names as in the ONNX node), the pre-NMS top-k and which route's semantics."""

    score_threshold: float = 0.001
    iou_threshold: float = 0.5
    max_output_boxes: int = 100
    background_class: int = -1
    score_activation: bool = True
    class_agnostic: bool = False
    box_coding: int = 0
    top_k: int = PLUGIN_TOP_K
    semantics: str = "plugin"


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Numerically safe logistic, float32."""
    x = x.astype(np.float32)
    return (0.5 * (np.tanh(0.5 * x) + 1.0)).astype(np.float32)


def logit_threshold(threshold: float) -> np.float32:
    """The logit a sigmoid score threshold maps to (float32; -inf for 0): sigmoid(x) >= t <=> x >= this.
    The `--nms onnx` graph stores exactly this constant."""
    t = float(threshold)
    if t <= 0.0:
        return np.float32(-np.inf)
    if t >= 1.0:
        return np.float32(np.inf)
    return np.float32(np.log(t) - np.log1p(-t))


def _corners(boxes: np.ndarray, anchors: np.ndarray | None, box_coding: int) -> np.ndarray:
    """[n,4] plugin boxes (+ optional [n,4] anchors) -> [n,4] corners, as the plugin decodes them."""
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


def _top_rows(best: np.ndarray, k: int, keep_ties: bool) -> np.ndarray:
    """Anchors with the k highest `best`. keep_ties (plugin): also every anchor tied with the k-th, in
    anchor order - a superset that surely holds the global top-k pairs. Else (the graph's TopK): exactly
    k, in (best desc, anchor asc) order."""
    return _top_k_with_ties(best, k) if keep_ties else _top_positions(best, k)


def _top_k_with_ties(values: np.ndarray, k: int) -> np.ndarray:
    """Positions (ascending) of every value >= the k-th largest: partition, no full sort."""
    if len(values) <= k:
        return np.arange(len(values))
    return np.flatnonzero(values >= np.partition(values, len(values) - k)[len(values) - k])


def _top_positions(values: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k largest values, sorted by (value desc, position asc): a stable sort of -values
    cut to k, without sorting everything."""
    pos = _top_k_with_ties(values, k)
    return pos[np.argsort(-values[pos], kind="stable")][:k]


def _select(scores: np.ndarray, p: NMSParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """[N,C] scores -> (anchor, class, output score) of the pre-NMS top-k above threshold, sorted."""
    onnx_route = p.semantics == "onnx"
    activate = p.score_activation and not onnx_route           # plugin: rank and threshold on sigmoid
    space = scores.astype(np.float32, copy=False)
    if p.background_class >= 0:
        space = space.copy()
        space[:, p.background_class] = -np.inf
    best = space.max(1)
    best = sigmoid(best) if activate else best                 # sigmoid is monotonic: max commutes
    rows = _top_rows(best, p.top_k, keep_ties=not onnx_route)
    cand = sigmoid(space[rows]) if activate else space[rows]   # [A, C]
    order = _top_positions(cand.reshape(-1), p.top_k)         # plugin: rows ascending, so ties by anchor*C+class
    values = cand.reshape(-1)[order]
    threshold = logit_threshold(p.score_threshold) if onnx_route and p.score_activation else np.float32(p.score_threshold)
    keep = values >= threshold
    num_classes = scores.shape[1]
    if p.background_class >= 0:
        keep &= order % num_classes != p.background_class
    order, values = order[keep], values[keep]
    out = sigmoid(values) if onnx_route and p.score_activation else values
    return rows[order // num_classes], order % num_classes, out


def _greedy(boxes: np.ndarray, classes: np.ndarray, p: NMSParams) -> list[int]:
    """Indices (into the sorted candidates) kept by greedy NMS, at most max_output_boxes."""
    alive = np.ones(len(boxes), dtype=bool)
    kept: list[int] = []
    ordered = _reordered(boxes)
    threshold = np.float32(p.iou_threshold)
    for i in range(len(boxes)):
        if not alive[i]:
            continue
        if len(kept) >= p.max_output_boxes:
            break
        kept.append(i)
        later = slice(i + 1, len(boxes))
        iou = box_iou(ordered[i : i + 1], ordered[later])[0]
        hit = iou > threshold if p.semantics == "onnx" else iou >= threshold
        if not p.class_agnostic:
            hit &= classes[later] == classes[i]
        alive[later] &= ~hit
    return kept


def efficient_nms(boxes: np.ndarray, scores: np.ndarray, anchors: np.ndarray | None = None,
                  params: NMSParams = NMSParams()) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """[B,N,4] boxes and [B,N,C] scores (+ [1|B,N,4] anchors) -> the 4 outputs (see module docstring)."""
    if params.semantics not in SEMANTICS or params.top_k < 1:
        raise ValueError(f"NMSParams: semantics must be one of {SEMANTICS} and top_k >= 1, got {params}")
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
