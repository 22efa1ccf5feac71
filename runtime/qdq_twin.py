"""ONNX Runtime's twin of an FP16 Q/DQ file: what the CPU preview runs where ONNX Runtime computes FP16
QuantizeLinear wrongly. The file on disk, the one TensorRT compiles, is never changed.

ONNX Runtime 1.24.4 to 1.29.0 (CPU) truncate x / scale toward zero in QuantizeLinear on FP16 input instead of
rounding half to even as the ONNX spec says (0.026 / 0.05 -> 0, 1.234 / 0.05 -> 24, 0.075 / 0.05 -> 1); 1.30.0 and
later round (measured here on the PyPI wheels 1.24.4, 1.25.0 ... 1.29.0, 1.30.0, 1.31.1, 1.32.0 with one
QuantizeLinear-19 on float16; tests/test_qdq_twin.py keeps the check). NVIDIA ModelOpt pins 1.24, and the INT8
file for TensorRT >= 10.0 is ModelOpt's own form (Q on FP16 tensors, FP16 scales), so on those versions the preview
runs this twin. Its only change: every QuantizeLinear with an FP16 scale reads its input through a Cast to FP32
and an FP32 copy of its scale. FP16 -> FP32 is lossless, so the twin rounds the very FP16 values the file
quantizes; every DequantizeLinear keeps its FP16 scale (ONNX Runtime computes that correctly, one rounding).

BARRIER: ONNX Runtime runs FP16 ops that lack a CPU kernel (Mul, Add, Sigmoid...) in FP32 between Casts it inserts,
and then removes the Cast pair FP32 -> FP16 -> FP32 that its own Cast and the twin's make, so the Q would see the
unrounded FP32 result (one code off at ties: 5,013 of 6M activation codes in 151 of 219 Q nodes of shapes_d0 at 128;
found by a read-only audit). A Max(x, x) in front of the Cast, which ONNX Runtime computes in FP16, keeps the
rounding (tests/test_qdq_twin.py checks every Q of a real INT8 file against the ONNX rule).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from runtime.lazy import lazy_import
from runtime.trt_compat import version_tuple

if TYPE_CHECKING:
    import onnx

# Metadata `qdq_form` of the two INT8 files (calibration/qdq_forms.py writes them; build and info read them here).
FP16_QDQ_FORM = "fp16-opset19"          # TensorRT >= 10.0: ModelOpt's native output, FP16 math and scales
FP32_QDQ_FORM = "fp32-opset17"          # TensorRT 8.6: FP32 math, Q/DQ at opset 17
FP16_Q_ROUNDS_FROM = (1, 30)            # first ONNX Runtime whose CPU QuantizeLinear rounds FP16 input


def ort_needs_twin(ort_version: str) -> bool:
    """Whether this ONNX Runtime truncates in QuantizeLinear on FP16 input."""
    return version_tuple(ort_version) < FP16_Q_ROUNDS_FROM


def file_needs_twin(metadata: dict[str, str], ort_version: str) -> bool:
    """Whether a file with this metadata must run as its twin on this ONNX Runtime."""
    return metadata.get("qdq_form") == FP16_QDQ_FORM and ort_needs_twin(ort_version)


def twin(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of `model` where each FP16-scaled QuantizeLinear quantizes Cast(input, FP32) with an FP32 scale."""
    onnx_ = lazy_import("onnx", "onnx")
    helper, numpy_helper = onnx_.helper, onnx_.numpy_helper
    out = onnx_.ModelProto()
    out.CopyFrom(model)
    fp16 = {t.name: t for t in out.graph.initializer if t.data_type == onnx_.TensorProto.FLOAT16}
    weights = {t.name for t in out.graph.initializer}
    fp32_scale: dict[str, str] = {}
    nodes = []
    for node in out.graph.node:
        if node.op_type == "QuantizeLinear" and node.domain in ("", "ai.onnx") and node.input[1] in fp16:
            scale = node.input[1]
            if scale not in fp32_scale:
                fp32_scale[scale] = f"{scale}_fp32_for_ort"
                value = numpy_helper.to_array(fp16[scale]).astype("float32")
                out.graph.initializer.append(numpy_helper.from_array(value, fp32_scale[scale]))
            label = node.name or node.output[0]
            source = node.input[0]
            if source not in weights:     # see BARRIER
                nodes.append(helper.make_node("Max", [source, source], [f"{source}_fp16_for_{label}"],
                                              name=f"{label}_ort_fp16_barrier"))
                source = nodes[-1].output[0]
            nodes.append(helper.make_node("Cast", [source], [f"{node.input[0]}_fp32_for_{label}"],
                                          to=onnx_.TensorProto.FLOAT, name=f"{label}_ort_cast"))
            node.input[0], node.input[1] = nodes[-1].output[0], fp32_scale[scale]
        nodes.append(node)
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    return out


def twin_if_needed(model: onnx.ModelProto, ort_version: str | None = None) -> onnx.ModelProto:
    """`model` itself where this ONNX Runtime computes it correctly, else its twin (calibration's in-memory runs)."""
    if ort_version is None:
        ort_version = lazy_import("onnxruntime", "onnxruntime-gpu").__version__
    return twin(model) if ort_needs_twin(ort_version) else model


def twin_bytes(serialized: bytes) -> bytes:
    """The twin of a serialized model, serialized (what the ONNX Runtime backend opens instead of the file)."""
    onnx_ = lazy_import("onnx", "onnx (the CPU preview of an FP16 Q/DQ INT8 file rewrites it in memory)")
    return twin(onnx_.load_from_string(serialized)).SerializeToString()
