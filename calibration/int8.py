"""Explicit INT8: Q/DQ nodes from NVIDIA ModelOpt, calibrated on the runtime's own preprocessing.

The pipeline (calibration/artifacts.py runs it): split the file into network body and FP32 tail
(graph_split) -> ModelOpt inserts Q/DQ with entropy ranges (here) -> each activation range re-chosen by measured
quantization error (ranges) -> every scale made a normal FP16 number (ranges.floor_scales) -> conv biases
corrected for the mean shift INT8 causes (bias_correction) -> the body in the form of the target TensorRT
(qdq_forms) -> the tail joined back -> lint for that TensorRT.
Default method "mixed" runs all of it; "entropy"/"max" stop after ModelOpt's own ranges.
The calibrated body is ModelOpt's native output: opset 19, unquantized math in FP16 (ModelOpt's
high_precision_dtype; the strongly typed twin of `--int8 --fp16`) except the op types of calibration/fp16.py:FP32_OPS,
FP16 scales, Q on the FP16 tensor, each DQ straight into its consumer. ONNX Runtime runs it through
runtime/qdq_twin.py where its FP16 QuantizeLinear truncates (before 1.30).
"""
from __future__ import annotations

import logging
import re
import tempfile
from pathlib import Path

import numpy as np
import onnx

from calibration.graph_split import SplitGraph
from calibration.groups import groups_of
from runtime.lazy import lazy_import
from runtime.log import logger
from runtime.progress import ProgressBar, progress_bar

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
                  only: list[str] | None = None) -> onnx.ModelProto:
    """The calibrated body in ModelOpt's FP16 opset-19 form; "mixed": ranges refined, then conv biases corrected.
    `exclude`/`only` are exact node names."""
    from calibration.ranges import floor_scales, refine_ranges

    body = modelopt_body(parts, data, method, exclude, only)
    if method == "mixed":
        body, _ = refine_ranges(body, parts.body, data)
    raised = floor_scales(body)
    if raised:
        logger.info(f"{raised} Q/DQ scale(s) below the smallest normal FP16 number raised to it (ranges.FP16_MIN_SCALE)")
    if method != "mixed":
        return body
    from calibration.bias_correction import correct_biases

    body, report = correct_biases(body, parts.body, data)
    logger.info(report.line())
    return body


def modelopt_body(parts: SplitGraph, data: np.ndarray, method: str, exclude: list[str],
                  only: list[str] | None = None, high_precision: str = "fp16") -> onnx.ModelProto:
    """ModelOpt's output as it writes it (opset 19)."""
    from calibration.fp16 import FP32_OPS

    quantization = lazy_import("modelopt.onnx.quantization", "'nvidia-modelopt[onnx]'")
    _quiet_modelopt()
    input_name = parts.body.graph.input[0].name
    with tempfile.TemporaryDirectory() as tmp, progress_bar("calibrating", len(data), "image") as bar:
        src, dst = Path(tmp) / "body.onnx", Path(tmp) / "body.int8.onnx"
        onnx.save(parts.body, str(src))
        quantization.quantize(
            str(src), quantize_mode="int8", calibration_data_reader=counted_reader(str(src), input_name, data, bar),
            calibration_method=METHODS[method], calibration_eps=["cpu"], high_precision_dtype=high_precision,
            op_types_to_exclude_fp16=list(FP32_OPS),
            nodes_to_exclude=[f"^{re.escape(n)}$" for n in exclude] or None,
            nodes_to_quantize=[f"^{re.escape(n)}$" for n in only] if only is not None else None,
            output_path=str(dst), log_level="WARNING")
        return onnx.load(str(dst))


def counted_reader(body_path: str, input_name: str, data: np.ndarray, bar: ProgressBar) -> object:
    """ModelOpt's own reader over `data` (its batching, get_first and rewind unchanged), counting the images
    it hands out on `bar`: calibration is minutes of ONNX Runtime inside one ModelOpt call."""
    calib_utils = lazy_import("modelopt.onnx.quantization.calib_utils", "'nvidia-modelopt[onnx]'")

    class CountedProvider(calib_utils.CalibrationDataProvider):  # type: ignore[misc,name-defined]
        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = super().get_next()
            if batch is not None:
                bar.update(len(batch[input_name]))
            elif bar.done:
                bar.status = "ModelOpt computing ranges"
            return batch

    return CountedProvider(body_path, {input_name: data})


def sensitive_nodes(parts: SplitGraph) -> list[str]:
    """Body node names of SENSITIVE_GROUPS and SENSITIVE_PATTERNS (the default exclusion)."""
    groups = groups_of(parts.body)
    named = [n for g in SENSITIVE_GROUPS for n in groups.get(g, [])]
    matched = [n.name for n in parts.body.graph.node if any(re.search(p, n.name) for p in SENSITIVE_PATTERNS)]
    return list(dict.fromkeys(named + matched))
