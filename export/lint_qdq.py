"""Q/DQ rules of the TensorRT lint: each Q/DQ as TensorRT's importers read it (scale, zero point, axis), and
its place in the graph as TensorRT's INT8 fusions need it (a DQ feeds the layer it quantizes directly; no Cast
next to a Q/DQ; weights per channel along the output channels)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from export.lint_graph import attr, node_label

if TYPE_CHECKING:
    from export.lint import _Context

QUANTIZED_LAYERS = frozenset({"Conv", "ConvTranspose", "MatMul", "Gemm"})
# Ops that only move or retype data: a DQ reaching a quantized layer through them does not feed it directly
PASS_THROUGH = frozenset({"Cast", "Identity", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten", "Expand"})
FUSION_DOC = "TensorRT developer guide, Explicit Quantization: Q/DQ fusion"
# Output-channel axis of a weight input, per layer: ONNX Conv weights are [K, C/g, R, S], ConvTranspose weights
# [C, K/g, R, S]. NVIDIA pytorch-quantization (tensor_quant.py QUANT_DESC_8BIT_CONV*/CONVTRANSPOSE*_WEIGHT_PER_CHANNEL)
# quantizes them on axis 0 and 1; onnx-tensorrt's importers assume per-channel means weights "KCRS".
WEIGHT_AXIS = {"Conv": 0, "ConvTranspose": 1}
AXIS_SOURCE = ("onnx-tensorrt 8.6-GA builtin_op_importers.cpp / 10.1-GA onnxOpImporters.cpp "
               "QuantDequantLinearHelper; NVIDIA pytorch-quantization tensor_quant.py")
FP16_SCALE_SOURCE = ("ONNX QuantizeLinear-13/DequantizeLinear-13 take float scales only, -19 adds float16; "
                     "onnx-tensorrt 10.0-GA onnxOpImporters.cpp reads FP16 scales, 8.6-GA reads every scale as float")


def check_qdq(node: onnx.NodeProto, c: _Context) -> list[str]:
    """Q/DQ as TensorRT's importers read them (builtin_op_importers.cpp 8.6-GA QuantDequantLinearHelper,
    onnxOpImporters.cpp 10.1-GA): the scale a constant, finite and > 0; 8.6 needs all three inputs and reads
    the scale as float32 whatever its type; the zero point a constant 0 of INT8 (8.6 refuses UINT8 on Q; 10.x
    reads UINT8 as INT8, clamping to [-128, 127] instead of [0, 255])."""
    label = node_label(node)
    problems = _check_scale(node, c)
    if len(node.input) < 3 or not node.input[2]:
        if c.rules.since < (10, 0):
            problems.append(f"{label}: {node.op_type} without a zero point; TensorRT {c.version}'s parser needs all "
                            f"three inputs ({c.rules.source})")
        return problems
    zero = c.tensors.get(node.input[2])
    if zero is None or np.any(numpy_helper.to_array(zero) != 0):
        problems.append(f"{label}: {node.op_type} zero point must be a constant 0 for TensorRT ({c.rules.source})")
    elif zero.data_type != TensorProto.INT8:
        problems.append(f"{label}: {node.op_type} zero point is {TensorProto.DataType.Name(zero.data_type)}; "
                        f"TensorRT quantizes to INT8 only ({c.rules.source})")
    return problems


def _check_scale(node: onnx.NodeProto, c: _Context) -> list[str]:
    """Constant, finite, > 0; FP16 only from opset 19 and TensorRT 10.0; per channel only on weights, with the
    axis stated (ONNX's default axis is 1, TensorRT's importers take 0 when the attribute is absent)."""
    label = node_label(node)
    scale = c.tensors.get(node.input[1]) if len(node.input) > 1 else None
    if scale is None:
        return [f"{label}: {node.op_type} scale must be a constant ({c.rules.source})"]
    problems, values = [], numpy_helper.to_array(scale)
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        problems.append(f"{label}: {node.op_type} scale must be finite and > 0 ({c.rules.source})")
    if scale.data_type != TensorProto.FLOAT:
        kind = TensorProto.DataType.Name(scale.data_type)
        if c.rules.since < (10, 0):
            problems.append(f"{label}: {node.op_type} scale is {kind}; TensorRT {c.version}'s parser reads it as "
                            f"FLOAT ({FP16_SCALE_SOURCE}): FP16 scales need TensorRT >= 10.0")
        if c.opset is not None and c.opset < 19:
            problems.append(f"{label}: {node.op_type} scale is {kind} at opset {c.opset}; non-FLOAT scales need "
                            f"opset >= 19 ({FP16_SCALE_SOURCE})")
    if values.size > 1 and not rooted_at_constant(node.input[0], c):
        problems.append(f"{label}: per-channel {node.op_type} of a tensor computed at run time; TensorRT quantizes "
                        f"per channel only inputs rooted at a constant (weights) (NvInfer.h IDequantizeLayer)")
    if values.size > 1 and attr(node, "axis", None) is None:
        problems.append(f"{label}: per-channel {node.op_type} without an axis attribute: ONNX reads axis 1, "
                        f"TensorRT's importer axis 0 ({AXIS_SOURCE}); state the axis")
    return problems


def rooted_at_constant(name: str, c: _Context) -> bool:
    """Whether `name` is a constant, or computed from one by QuantizeLinear/Cast/Identity only (weights)."""
    while name not in c.tensors:
        node = c.producers.get(name)
        if node is None or node.op_type not in ("QuantizeLinear", "Cast", "Identity"):
            return False
        name = node.input[0]
    return True


def weight_axis_problems(node: onnx.NodeProto, c: _Context) -> list[str]:
    """A Conv/ConvTranspose whose weights are dequantized per channel: the axis must be the output channels
    (0 for Conv, 1 for ConvTranspose), on the DQ and on the Q before it."""
    if node.op_type not in WEIGHT_AXIS or len(node.input) < 2:
        return []
    chain, dq = [], c.producers.get(node.input[1])
    if dq is not None and dq.op_type == "DequantizeLinear":
        chain.append(dq)
        q = c.producers.get(dq.input[0])
        chain += [q] if q is not None and q.op_type == "QuantizeLinear" else []
    rank = len(c.shapes.get(node.input[1]) or []) or 4
    want, problems = WEIGHT_AXIS[node.op_type], []
    for qdq in chain:
        scale = c.const(qdq.input[1]) if len(qdq.input) > 1 else None
        axis = attr(qdq, "axis", 1)
        axis = axis + rank if isinstance(axis, int) and axis < 0 else axis
        if scale is not None and scale.size > 1 and axis != want:
            problems.append(f"{node_label(qdq)}: per-channel weights of {node.op_type} '{node.name or '?'}' on axis "
                            f"{axis}; TensorRT quantizes {node.op_type} weights per output channel, axis {want} "
                            f"({AXIS_SOURCE})")
    return problems


def placement_problems(node: onnx.NodeProto, c: _Context) -> list[str]:
    """A DQ feeds each quantized layer directly, and no Cast touches a Q/DQ (DESIGN section 5)."""
    if node.op_type == "DequantizeLinear":
        return _dq_consumers(node, c)
    if node.op_type != "Cast":
        return []
    before = c.producers.get(node.input[0]) if node.input else None
    problems = []
    if before is not None and before.op_type == "QuantizeLinear":
        problems.append(_cast_finding(before, node))
    for after in c.consumers.get(node.output[0], []):
        if after.op_type in ("QuantizeLinear", "DequantizeLinear"):
            problems.append(_cast_finding(node, after))
    return problems


def _cast_finding(first: onnx.NodeProto, second: onnx.NodeProto) -> str:
    return (f"{node_label(first)} -> {second.op_type} '{second.name or '?'}': a Cast next to a Q/DQ; TensorRT "
            f"describes its Q/DQ fusions without one and its parser never removes data Casts ({FUSION_DOC}): "
            f"quantize the tensor in its own type (opset 19 Q/DQ take FP16)")


def _dq_consumers(dq: onnx.NodeProto, c: _Context) -> list[str]:
    """Each consumer of a DQ: fine when it reads the DQ itself; a finding when it is a Cast or when a chain of
    data-moving ops leads to a quantized layer ("DQ -> Cast -> Conv")."""
    problems = []
    for consumer in c.consumers.get(dq.output[0], []):
        paths = _paths_to_layers(consumer, c, [consumer]) if consumer.op_type in PASS_THROUGH else []
        for path in paths:
            steps = " -> ".join(n.op_type for n in path[:-1])
            problems.append(f"{node_label(dq)} -> {steps} -> {path[-1].op_type} '{path[-1].name or '?'}': "
                            f"{FUSION_DOC} documents the INT8 fusion for a DQ feeding the layer directly")
        if consumer.op_type == "Cast" and not paths:
            problems.append(_cast_finding(dq, consumer))
    return problems


def _paths_to_layers(node: onnx.NodeProto, c: _Context, path: list[onnx.NodeProto]) -> list[list[onnx.NodeProto]]:
    """Paths from a data-moving op through others like it to the quantized layers it reaches (at most 8 deep)."""
    found = []
    for nxt in c.consumers.get(node.output[0], []) if node.output else []:
        if nxt.op_type in QUANTIZED_LAYERS:
            found.append(path + [nxt])
        elif nxt.op_type in PASS_THROUGH and len(path) < 8:
            found += _paths_to_layers(nxt, c, path + [nxt])
    return found
