"""Explicit INT8: Q/DQ nodes from NVIDIA ModelOpt, calibrated on the runtime's own preprocessing.

The body is quantized (ModelOpt runs it in ONNX Runtime on CPU); the FP32 tail is re-attached as is.
Nodes that stay unquantized keep FP32 here (high_precision_dtype fp32) so the file runs anywhere;
TensorRT still picks FP16 tactics for them only if told to, which a strongly typed build does not do.
"""
from __future__ import annotations

import logging
import re
import tempfile
from pathlib import Path

import numpy as np
import onnx

from calibration.graph_split import SplitGraph, join, split
from runtime.lazy import lazy_import

METHODS = {"entropy": "entropy", "max": "max", "minmax": "max"}


class _NoGpuProbe(logging.Filter):
    """ModelOpt logs 'Failed to get GPU count' at ERROR on every CPU-only calibration; that is expected
    on a machine without a GPU, so it is dropped there (and only there)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Failed to get GPU count" not in record.getMessage()


def _quiet_modelopt() -> None:
    from runtime.gpu import cuda_device_count

    logging.getLogger("modelopt").setLevel(logging.WARNING)
    onnx_logger = logging.getLogger("modelopt.onnx")
    if not cuda_device_count() and not any(isinstance(f, _NoGpuProbe) for f in onnx_logger.filters):
        onnx_logger.addFilter(_NoGpuProbe())


def quantize_body(parts: SplitGraph, data: np.ndarray, method: str, exclude: list[str],
                  only: list[str] | None = None) -> onnx.ModelProto:
    """The body with Q/DQ inserted by ModelOpt; `exclude`/`only` are exact node names."""
    quantization = lazy_import("modelopt.onnx.quantization", "'nvidia-modelopt[onnx]'")
    _quiet_modelopt()
    input_name = parts.body.graph.input[0].name
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "body.onnx", Path(tmp) / "body.int8.onnx"
        onnx.save(parts.body, str(src))
        quantization.quantize(
            str(src), quantize_mode="int8", calibration_data={input_name: data},
            calibration_method=METHODS[method], calibration_eps=["cpu"], high_precision_dtype="fp32",
            nodes_to_exclude=[f"^{re.escape(n)}$" for n in exclude] or None,
            nodes_to_quantize=[f"^{re.escape(n)}$" for n in only] if only is not None else None,
            output_path=str(dst), log_level="WARNING")
        return onnx.load(str(dst))


def to_int8(model: onnx.ModelProto, data: np.ndarray, method: str = "entropy", exclude: list[str] | None = None,
            parts: SplitGraph | None = None) -> onnx.ModelProto:
    """FP32 exported model + prepared calibration images [N, ...] -> Q/DQ INT8 model with the FP32 tail."""
    parts = parts or split(model)
    body = quantize_body(parts, data, method, exclude or [])
    return join(parts, body, {"precision": "int8", "calibration_method": method,
                              "calibration_images": str(len(data))})
