"""CPU stand-in for TensorRT's EfficientNMS_TRT plugin inside ONNX Runtime: the numpy reference
(runtime/nms.py) registered as a Python custom op with onnxruntime-extensions, so the exact exported
file runs on CPU. Registration happens once per process.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from runtime.errors import DeployError
from runtime.nms import PLUGIN_TOP_K, NMSParams, efficient_nms


def _plugin(boxes: np.ndarray, scores: np.ndarray, anchors: np.ndarray, **attrs: object) -> tuple[np.ndarray, ...]:
    params = NMSParams(score_threshold=float(attrs["score_threshold"]), iou_threshold=float(attrs["iou_threshold"]),
                       max_output_boxes=int(attrs["max_output_boxes"]), background_class=int(attrs["background_class"]),
                       score_activation=bool(attrs["score_activation"]), class_agnostic=bool(attrs["class_agnostic"]),
                       box_coding=int(attrs["box_coding"]), top_k=PLUGIN_TOP_K, semantics="plugin")
    return efficient_nms(boxes, scores, anchors, params)


@lru_cache(maxsize=1)
def custom_ops_library() -> str:
    """Path of the onnxruntime-extensions library with EfficientNMS_TRT registered."""
    try:
        from onnxruntime_extensions import PyCustomOpDef, get_library_path, onnx_op
    except ImportError:
        raise DeployError("running an EfficientNMS_TRT file on ONNX Runtime needs onnxruntime-extensions "
                          "(pip install onnxruntime-extensions)") from None
    f, i32, i64, s = PyCustomOpDef.dt_float, PyCustomOpDef.dt_int32, PyCustomOpDef.dt_int64, PyCustomOpDef.dt_string
    onnx_op(op_type="EfficientNMS_TRT", inputs=[f, f, f], outputs=[i32, f, f, i32],
            attrs={"plugin_version": s, "background_class": i64, "max_output_boxes": i64, "score_threshold": f,
                   "iou_threshold": f, "score_activation": i64, "class_agnostic": i64, "box_coding": i64})(_plugin)
    return get_library_path()
