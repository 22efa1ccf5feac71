"""The one function that appends post-processing to a network graph, so every precision gets the
identical tail (DESIGN §5). Both NMS kinds produce the same four outputs:
num_detections int32 [B,1], detection_boxes float32 [B,K,4], detection_scores float32 [B,K],
detection_classes int32 [B,K]; rows past num_detections are zero.

- `efficient`: one `EfficientNMS_TRT` node (plugin v1, fused box decoder, box_coding 1, sigmoid in the
  plugin). Its domain is `ai.onnx.contrib`: TensorRT's parser resolves unknown ops by op_type through the
  plugin registry and ignores the domain, and ONNX Runtime runs the same file on CPU through the numpy
  reference registered with onnxruntime-extensions (runtime/ort_plugins.py) - no rewrite needed.
- `onnx` (standard ops, for TensorRT 10.12+/11): on the logits, a two-stage pre-NMS top-k over
  anchors x classes (TopK of the k anchors by best class logit, then TopK of the k best pairs among their
  k x C logits: the same set as one TopK over all N x C, without sorting 4.4 M scores), the score
  threshold as logit >= logit(threshold), decoding of the k kept boxes only, NonMaxSuppression with a
  class dimension over those k, the best K, sigmoid on the K output scores. TopK K and the NMS input are
  at most k (<= 3839 < TensorRT's TopK limit 3840; default 2000 <= INMSLayer's 2000 on SM 5.3/6.2, 5000
  elsewhere), so TensorRT's limits never bite. No tensor is dense over anchors x classes.
  NMS ranks candidates by position (k - j), so no NMS scores tie (INMSLayer's tie order is unspecified,
  NvInfer.h 8.6.1; like ORT it keeps IoU <= threshold and score > score threshold).
  runtime/nms.py semantics="onnx" computes the same (tested equal). Differences to the plugin: pre-NMS k
  (plugin 4096), IoU > threshold suppresses (plugin >=), ties in the pre-NMS order (see README).
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from runtime.errors import DeployError
from runtime.nms import logit_threshold

PLUGIN_DOMAIN = "ai.onnx.contrib"
OUTPUTS = ("num_detections", "detection_boxes", "detection_scores", "detection_classes")


def plugin_attributes(score_threshold: float, iou_threshold: float, max_detections: int) -> dict:
    """EfficientNMS_TRT attributes as the plugin creator reads them."""
    return dict(plugin_version="1", background_class=-1, max_output_boxes=int(max_detections),
                score_threshold=float(score_threshold), iou_threshold=float(iou_threshold),
                score_activation=1, class_agnostic=0, box_coding=1)


def _set_outputs(graph: onnx.GraphProto, batch: int | str, k: int) -> None:
    del graph.output[:]
    graph.output.extend([
        helper.make_tensor_value_info("num_detections", TensorProto.INT32, [batch, 1]),
        helper.make_tensor_value_info("detection_boxes", TensorProto.FLOAT, [batch, k, 4]),
        helper.make_tensor_value_info("detection_scores", TensorProto.FLOAT, [batch, k]),
        helper.make_tensor_value_info("detection_classes", TensorProto.INT32, [batch, k]),
    ])


def append_efficient_nms(model: onnx.ModelProto, anchors_cs: np.ndarray, batch: int | str,
                         score_threshold: float, iou_threshold: float, k: int) -> None:
    """box_regression [B,N,4] (tx,ty,tw,th) + cls_logits [B,N,C] -> EfficientNMS_TRT -> 4 outputs."""
    g = model.graph
    g.initializer.append(numpy_helper.from_array(anchors_cs[None].astype(np.float32), "nms_anchors"))
    g.node.append(helper.make_node("EfficientNMS_TRT", ["box_regression", "cls_logits", "nms_anchors"], list(OUTPUTS),
                                   name="efficient_nms", domain=PLUGIN_DOMAIN,
                                   **plugin_attributes(score_threshold, iou_threshold, k)))
    if not any(o.domain == PLUGIN_DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(PLUGIN_DOMAIN, 1))
    _set_outputs(g, batch, k)


class _Tail:
    """Appends nodes and constants named `nms_*` to a graph (short builder so each stage reads as a list)."""

    def __init__(self, graph: onnx.GraphProto, opset: int) -> None:
        self.g, self.opset = graph, opset

    def const(self, name: str, value: np.ndarray) -> str:
        self.g.initializer.append(numpy_helper.from_array(np.asarray(value), f"nms_{name}"))
        return f"nms_{name}"

    def op(self, op_type: str, inputs: list[str], outputs: str | list[str], **attrs: object) -> str:
        outs = [outputs] if isinstance(outputs, str) else outputs
        names = [o if o in OUTPUTS else f"nms_{o}" for o in outs]
        self.g.node.append(helper.make_node(op_type, inputs, names, name=f"nms_{outs[0]}_{op_type}", **attrs))
        return names[0]

    def reduce_max(self, x: str, axis: int, out: str) -> str:
        """ReduceMax over one axis, keepdims 0 (axes: attribute before opset 18, input from 18)."""
        if self.opset >= 18:
            return self.op("ReduceMax", [x, self.const(f"{out}_axes", np.int64([axis]))], out, keepdims=0)
        return self.op("ReduceMax", [x], out, axes=[axis], keepdims=0)


def _static_heads(t: _Tail, num_anchors: int, num_classes: int) -> tuple[str, str]:
    """Reshape the heads to [-1, N, C] and [-1, N, 4] (free: no copy): static N and C let shape inference
    carry the static k through the tail, where the lint reads the NMS box count, whatever the batch."""
    logits = t.op("Reshape", ["cls_logits", t.const("logits_shape", np.int64([-1, num_anchors, num_classes]))], "logits_in")
    regression = t.op("Reshape", ["box_regression", t.const("reg_shape", np.int64([-1, num_anchors, 4]))], "reg_in")
    return logits, regression


def _opset(model: onnx.ModelProto) -> int:
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def _select_candidates(t: _Tail, cls_logits: str, num_classes: int, k: int) -> tuple[str, str, str]:
    """Two-stage pre-NMS top-k on the logits: the k anchors with the best class logit (TopK over N),
    then the k best (anchor, class) pairs among their k x C logits. -> logits [B,k], anchor, class [B,k]."""
    k_rows = k_pairs = k                                                               # k <= num_anchors
    best = t.reduce_max(cls_logits, 2, "best")                                       # [B,N]
    t.op("TopK", [best, t.const("k_rows", np.int64([k_rows]))], ["best_top", "rows"], axis=1)
    rows = "nms_rows"                                                                  # [B,k] anchor ids
    rows3 = t.op("Unsqueeze", [rows, t.const("last", np.int64([-1]))], "rows3")         # [B,k,1]
    cand = t.op("GatherND", [cls_logits, rows3], "cand", batch_dims=1)               # [B,k,C]
    flat = t.op("Reshape", [cand, t.const("flat", np.int64([0, -1]))], "cand_flat")      # [B,k*C]
    t.op("TopK", [flat, t.const("k_pairs", np.int64([k_pairs]))], ["logits", "pair"], axis=1)
    c = t.const("num_classes", np.int64(num_classes))
    row = t.op("Div", ["nms_pair", c], "row")
    cls = t.op("Mod", ["nms_pair", c], "cls")
    anchor = t.op("GatherElements", [rows, row], "anchor", axis=1)                     # [B,k]
    return "nms_logits", anchor, cls


def _decode(t: _Tail, box_regression: str, anchor: str, anchors_cs: np.ndarray) -> str:
    """box_regression (tx,ty,tw,th) of the selected anchors -> [B,k,4] x1,y1,x2,y2 (the plugin's
    box_coding 1 arithmetic: c + t*size, size*exp(t), corners c -/+ size/2)."""
    anchor3 = t.op("Unsqueeze", [anchor, "nms_last"], "anchor3")
    reg = t.op("GatherND", [box_regression, anchor3], "reg", batch_dims=1)          # [B,k,4]
    t_xy = t.op("Slice", [reg, t.const("s0", np.int64([0])), t.const("s2", np.int64([2])), "nms_last"], "t_xy")
    t_wh = t.op("Slice", [reg, "nms_s2", t.const("s4", np.int64([4])), "nms_last"], "t_wh")
    a_c = t.op("Gather", [t.const("anchor_center", anchors_cs[:, :2].astype(np.float32)), anchor], "a_c", axis=0)
    a_s = t.op("Gather", [t.const("anchor_size", anchors_cs[:, 2:].astype(np.float32)), anchor], "a_s", axis=0)
    center = t.op("Add", [t.op("Mul", [t_xy, a_s], "t_xy_s"), a_c], "center")
    size = t.op("Mul", [a_s, t.op("Exp", [t_wh], "exp_wh")], "size")
    half = t.op("Mul", [size, t.const("half", np.float32(0.5))], "half_size")
    return t.op("Concat", [t.op("Sub", [center, half], "x1y1"), t.op("Add", [center, half], "x2y2")], "boxes", axis=-1)


def _class_nms(t: _Tail, boxes: str, logits: str, cls: str, num_classes: int, k: int, score_threshold: float,
               iou_threshold: float, k_out: int) -> str:
    """Threshold on the logits, then NonMaxSuppression with a class dimension. NMS ranks by k - j (j: the
    candidate's position, already sorted by logit), not by sigmoid scores, so its walk order is exactly
    the candidates' order whatever the Sigmoid's rounding. Scores [B,C,k]: rank where the candidate is of
    class c and passes the threshold, -1 elsewhere. -> [B,k]: rank of each candidate NMS keeps, -1 else."""
    valid = t.op("GreaterOrEqual", [logits, t.const("logit_threshold", logit_threshold(score_threshold))], "valid")
    minus1 = t.const("minus1", np.float32(-1.0))
    rank = t.const("rank", np.arange(k, 0, -1, dtype=np.float32).reshape(1, k))
    nms_in = t.op("Where", [valid, rank, minus1], "nms_in")                            # [B,k]
    one = t.const("axis1", np.int64([1]))
    same = t.op("Equal", [t.op("Unsqueeze", [cls, one], "cls_b1k"),
                          t.const("class_ids", np.arange(num_classes, dtype=np.int64).reshape(1, -1, 1))], "same")
    per_class = t.op("Where", [same, t.op("Unsqueeze", [nms_in, one], "nms_in_b1k"), minus1], "per_class")  # [B,C,k]
    sel = t.op("NonMaxSuppression", [boxes, per_class, t.const("k_out", np.int64([k_out])),
                                     t.const("iou", np.float32([iou_threshold])),
                                     t.const("score_floor", np.float32([-0.5]))], "sel")  # [M,3] (b, c, j)
    b = t.op("Gather", [sel, t.const("i0", np.int64([0]))], "sel_b", axis=1)
    j = t.op("Gather", [sel, t.const("i2", np.int64([2]))], "sel_j", axis=1)
    bj = t.op("Concat", [b, j], "sel_bj", axis=1)                                      # [M,2]
    kept = t.op("GatherND", [nms_in, bj], "kept_rank")                                 # [M]
    fill = t.op("ConstantOfShape", [t.op("Shape", [nms_in], "shape_bk")], "fill",
                value=numpy_helper.from_array(np.float32([-1.0])))
    return t.op("ScatterND", [fill, bj, kept], "final")


def _best_k(t: _Tail, final: str, logits: str, boxes: str, cls: str) -> None:
    """The first k_out kept candidates per image (TopK on their rank) -> the four outputs; sigmoid on
    those k_out scores only; zero past num_detections."""
    t.op("TopK", [final, "nms_k_out"], ["top", "top_j"], axis=1)                       # [B,K]
    valid = t.op("Greater", ["nms_top", t.const("neg_half", np.float32(-0.5))], "out_valid")
    # counted in FP32 (exact to 2^24), then INT32: TensorRT 8.6 lists ReduceSum for FP32/FP16 only (operators.md)
    valid_f = t.op("Cast", [valid], "out_valid_f", to=TensorProto.FLOAT)
    count = t.op("ReduceSum", [valid_f, "nms_axis1"], "out_count", keepdims=1)
    t.op("Cast", [count], "num_detections", to=TensorProto.INT32)
    zero_f, zero_i = t.const("zero_f", np.float32(0.0)), t.const("zero_i", np.int32(0))
    top_score = t.op("Sigmoid", [t.op("GatherElements", [logits, "nms_top_j"], "top_logits", axis=1)], "top_score")
    t.op("Where", [valid, top_score, zero_f], "detection_scores")
    cls32 = t.op("Cast", [cls], "cls32", to=TensorProto.INT32)
    top_cls = t.op("GatherElements", [cls32, "nms_top_j"], "top_cls", axis=1)
    t.op("Where", [valid, top_cls, zero_i], "detection_classes")
    top_j3 = t.op("Unsqueeze", ["nms_top_j", "nms_last"], "top_j3")
    top_boxes = t.op("GatherND", [boxes, top_j3], "top_boxes", batch_dims=1)          # [B,K,4]
    valid3 = t.op("Unsqueeze", [valid, "nms_last"], "out_valid3")
    t.op("Where", [valid3, top_boxes, zero_f], "detection_boxes")


def append_onnx_nms(model: onnx.ModelProto, anchors_cs: np.ndarray, num_classes: int, batch: int | str,
                    score_threshold: float, iou_threshold: float, k_out: int, pre_nms_top_k: int) -> None:
    """box_regression [B,N,4] (tx,ty,tw,th) + cls_logits [B,N,C] -> two-stage pre-NMS top-k on logits ->
    decode the k kept boxes -> class-aware NonMaxSuppression on them -> best k_out -> the same 4 outputs.
    No tensor here is dense over anchors x classes; TopK K and the NMS input are at most pre_nms_top_k."""
    t = _Tail(model.graph, _opset(model))
    heads = _static_heads(t, len(anchors_cs), num_classes)
    k = min(pre_nms_top_k, len(anchors_cs))
    if k < k_out:
        raise DeployError(f"--nms onnx: pre-NMS top-k {k} (anchors: {len(anchors_cs)}) is below --max-detections {k_out}")
    logits, anchor, cls = _select_candidates(t, heads[0], num_classes, k)
    boxes = _decode(t, heads[1], anchor, anchors_cs)
    final = _class_nms(t, boxes, logits, cls, num_classes, k, score_threshold, iou_threshold, k_out)
    _best_k(t, final, logits, boxes, cls)
    _set_outputs(model.graph, batch, k_out)
