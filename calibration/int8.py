"""Explicit INT8: Q/DQ nodes from NVIDIA ModelOpt, calibrated on the runtime's own preprocessing.

The body is quantized (ModelOpt runs it in ONNX Runtime on CPU); the FP32 tail is re-attached as is.
Default method "mixed": ModelOpt's entropy calibration, then each activation range re-chosen among entropy,
percentile, max and a grid of clip points by measured quantization error (calibration/ranges.py), then every
conv bias corrected for the mean shift INT8 causes in its output (calibration/bias_correction.py).
Unquantized math is FP16 (ModelOpt's high_precision_dtype; the strongly typed twin of `--int8 --fp16`) except
the op types of calibration/fp16.py:FP32_OPS; the tail stays FP32. ModelOpt writes that at opset 19 with FP16
Q/DQ scales; calibration/opset17.py rewrites it to opset 17 (FP32 scales between Casts), which is also the
form ONNX Runtime's CPU kernels compute correctly (its FP16 QuantizeLinear truncates: AP 0.342 instead of 0.769).
"""
from __future__ import annotations

import logging
import re
import tempfile
from pathlib import Path

import numpy as np
import onnx

from calibration.graph_split import SplitGraph
from runtime.lazy import lazy_import
from runtime.log import logger

METHODS = {"mixed": "entropy", "entropy": "entropy", "max": "max", "minmax": "max"}   # ours -> ModelOpt's
DEFAULT_METHOD = "mixed"
# Blocks kept out of INT8 by default (sensitivity groups of calibration/sensitivity.py), each with its measurement:
# shapes_d0, 64 images, entropy, 100 scenes of the settings-selection seed 3 (FP32 AP 0.7749, all INT8 0.7216);
# AP with one group's Q/DQ removed: box_net/predict 0.7625, box_net/tower 0.7350, every other group <= 0.7288.
# Box regressions feed the decoder directly, and AP over IoU 0.5:0.95 punishes every pixel of box error.
SENSITIVE_GROUPS: dict[str, str] = {
    "box_net/predict": "+4.1 AP when kept out of INT8 alone (0.7216 -> 0.7625)",
    "box_net/tower": "+1.3 AP alone; with box_net/predict 0.7695 (entropy) / 0.7720 (mixed ranges)",
}
# Squeeze-excite gates kept out of INT8 too (FP16 math): the pooled vector, its two 1x1 convs on a 1x1 map, the
# sigmoid gate and the gating Mul. Their output (the Mul) stays quantized as the next conv's input, so every conv
# over a feature map is still INT8. A gate of 127 steps over [0, 1] scales whole channels by a coarse factor.
# Measured (issue 14, 300 scenes of the selection seed 3, three calibration sets): drop 0.67/0.54/0.60 AP points
# -> 0.49/0.43/0.50 with these Q/DQ removed.
SENSITIVE_PATTERNS: dict[str, str] = {
    r"/se/": "squeeze-excite gate (pooling, 1x1 convs, sigmoid, gating Mul)",
}


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
                  only: list[str] | None = None, high_precision: str = "fp16") -> onnx.ModelProto:
    """The body with Q/DQ inserted by ModelOpt, at opset 17; "mixed": ranges refined, then conv biases corrected
    (calibration/bias_correction.py). `exclude`/`only` are exact node names; unquantized math in
    `high_precision` ("fp16" | "fp32")."""
    from calibration.opset17 import to_opset17

    body = modelopt_body(parts, data, method, exclude, only, high_precision)
    if method != "mixed":
        return to_opset17(body)
    from calibration.bias_correction import correct_biases
    from calibration.ranges import refine_ranges

    body, _ = refine_ranges(body, parts.body, data)
    body, report = correct_biases(to_opset17(body), parts.body, data)
    logger.info(report.line())
    return body


def modelopt_body(parts: SplitGraph, data: np.ndarray, method: str, exclude: list[str],
                  only: list[str] | None = None, high_precision: str = "fp16") -> onnx.ModelProto:
    """ModelOpt's output as it writes it (opset 19)."""
    from calibration.fp16 import FP32_OPS

    quantization = lazy_import("modelopt.onnx.quantization", "'nvidia-modelopt[onnx]'")
    _quiet_modelopt()
    input_name = parts.body.graph.input[0].name
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "body.onnx", Path(tmp) / "body.int8.onnx"
        onnx.save(parts.body, str(src))
        quantization.quantize(
            str(src), quantize_mode="int8", calibration_data={input_name: data},
            calibration_method=METHODS[method], calibration_eps=["cpu"], high_precision_dtype=high_precision,
            op_types_to_exclude_fp16=list(FP32_OPS),
            nodes_to_exclude=[f"^{re.escape(n)}$" for n in exclude] or None,
            nodes_to_quantize=[f"^{re.escape(n)}$" for n in only] if only is not None else None,
            output_path=str(dst), log_level="WARNING")
        return onnx.load(str(dst))


def sensitive_nodes(parts: SplitGraph) -> list[str]:
    """Body node names of SENSITIVE_GROUPS and SENSITIVE_PATTERNS (the default exclusion)."""
    from calibration.sensitivity import groups_of

    groups = groups_of(parts.body)
    named = [n for g in SENSITIVE_GROUPS for n in groups.get(g, [])]
    matched = [n.name for n in parts.body.graph.node if any(re.search(p, n.name) for p in SENSITIVE_PATTERNS)]
    return list(dict.fromkeys(named + matched))
