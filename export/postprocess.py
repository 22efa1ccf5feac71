"""The one function that appends post-processing to a network graph, so every precision gets the
identical tail (DESIGN §5). Both NMS kinds produce the same four outputs:
num_detections int32 [B,1], detection_boxes float32 [B,K,4], detection_scores float32 [B,K],
detection_classes int32 [B,K]; rows past num_detections are zero.

- `efficient`: one `EfficientNMS_TRT` node (plugin v1, fused box decoder, box_coding 1, sigmoid in the
  plugin). Its domain is `ai.onnx.contrib`: TensorRT's parser resolves unknown ops by op_type through the
  plugin registry and ignores the domain, and ONNX Runtime runs the same file on CPU through the numpy
  reference registered with onnxruntime-extensions (runtime/ort_plugins.py) - no rewrite needed.
- `onnx`: standard NonMaxSuppression (per class), then a global top-K over the kept (class, anchor)
  pairs via ScatterND into a [B, C*N] buffer of -1 and TopK. Differences to the plugin: ONNX keeps
  score > threshold (plugin: >=) and suppresses at IoU > threshold (plugin: >=), and it has no pre-NMS
  top-4096 cut; on real scores these only matter at exact ties.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

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


def append_onnx_nms(model: onnx.ModelProto, num_anchors: int, batch: int | str, score_threshold: float,
                    iou_threshold: float, k: int) -> None:
    """boxes [B,N,4] xyxy + scores [B,N,C] -> NonMaxSuppression + top-K -> the same 4 outputs."""
    g = model.graph
    const = {"nms_k": np.int64([k]), "nms_iou": np.float32([iou_threshold]), "nms_score": np.float32([score_threshold]),
             "nms_n": np.int64(num_anchors), "nms_minus1": np.float32(-1.0), "nms_half": np.float32(-0.5),
             "nms_zero_f": np.float32(0.0), "nms_zero_i": np.int32(0), "nms_four": np.int64([4]),
             "nms_axes1": np.int64([1]), "nms_flat": np.int64([0, -1]), "nms_last": np.int64([-1]),
             "nms_i0": np.int64([0]), "nms_i1": np.int64([1]), "nms_i2": np.int64([2])}
    g.initializer.extend(numpy_helper.from_array(v, n) for n, v in const.items())
    n = helper.make_node
    g.node.extend([
        n("Transpose", ["scores"], ["nms_scores_t"], perm=[0, 2, 1]),                       # [B,C,N]
        n("NonMaxSuppression", ["boxes", "nms_scores_t", "nms_k", "nms_iou", "nms_score"], ["nms_sel"]),
        n("Gather", ["nms_sel", "nms_i0"], ["nms_b"], axis=1),                              # [M,1] each
        n("Gather", ["nms_sel", "nms_i1"], ["nms_c"], axis=1),
        n("Gather", ["nms_sel", "nms_i2"], ["nms_a"], axis=1),
        n("Mul", ["nms_c", "nms_n"], ["nms_cn"]),
        n("Add", ["nms_cn", "nms_a"], ["nms_flat_idx"]),
        n("Concat", ["nms_b", "nms_flat_idx"], ["nms_idx"], axis=1),                         # [M,2]
        n("GatherND", ["nms_scores_t", "nms_sel"], ["nms_sel_scores"]),                      # [M]
        n("Mul", ["nms_scores_t", "nms_zero_f"], ["nms_zeros"]),
        n("Add", ["nms_zeros", "nms_minus1"], ["nms_fill"]),
        n("Reshape", ["nms_fill", "nms_flat"], ["nms_dense0"]),                              # [B,C*N] of -1
        n("ScatterND", ["nms_dense0", "nms_idx", "nms_sel_scores"], ["nms_dense"]),
        n("TopK", ["nms_dense", "nms_k"], ["nms_top", "nms_top_i"], axis=1),                 # [B,K]
        n("Greater", ["nms_top", "nms_half"], ["nms_valid"]),
        n("Cast", ["nms_valid"], ["nms_valid_i"], to=TensorProto.INT32),
        n("ReduceSum", ["nms_valid_i", "nms_axes1"], ["num_detections"], keepdims=1),
        n("Where", ["nms_valid", "nms_top", "nms_zero_f"], ["detection_scores"]),
        n("Div", ["nms_top_i", "nms_n"], ["nms_cls64"]),
        n("Cast", ["nms_cls64"], ["nms_cls32"], to=TensorProto.INT32),
        n("Where", ["nms_valid", "nms_cls32", "nms_zero_i"], ["detection_classes"]),
        n("Mod", ["nms_top_i", "nms_n"], ["nms_anchor"]),
        n("Unsqueeze", ["nms_anchor", "nms_last"], ["nms_anchor3"]),                        # [B,K,1]
        n("Shape", ["nms_anchor"], ["nms_bk"]),
        n("Concat", ["nms_bk", "nms_four"], ["nms_bk4"], axis=0),
        n("Expand", ["nms_anchor3", "nms_bk4"], ["nms_gather_idx"]),
        n("GatherElements", ["boxes", "nms_gather_idx"], ["nms_boxes"], axis=1),            # [B,K,4]
        n("Unsqueeze", ["nms_valid", "nms_last"], ["nms_valid3"]),
        n("Where", ["nms_valid3", "nms_boxes", "nms_zero_f"], ["detection_boxes"]),
    ])
    _set_outputs(g, batch, k)
