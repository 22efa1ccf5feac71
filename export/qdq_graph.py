"""What an INT8 (Q/DQ) ONNX file promises TensorRT, counted from its graph: the convolutions TensorRT can run
in INT8 (data and weights both dequantized straight into the Conv, the placement TensorRT's explicit-quantization
fusion is documented for) and the names of its Q, DQ and Cast nodes. onnx-tensorrt names each layer after its
node, and IEngineInspector joins the names of fused layers with " + ", so gpu-check matches engine layers to
these names (tools/fusion_check.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import onnx

QDQ = ("QuantizeLinear", "DequantizeLinear")


@dataclass(frozen=True)
class FileQDQ:
    quantized_convs: tuple[str, ...]     # Conv nodes whose data and weight inputs come from a DequantizeLinear
    convs: frozenset[str]                # every Conv node
    quantize: frozenset[str]             # QuantizeLinear node names
    dequantize: frozenset[str]           # DequantizeLinear node names
    casts: frozenset[str]                # Cast node names
    qdq_casts: frozenset[str]            # Casts that read a Q/DQ output or feed a Q/DQ input


def quantized_convs(model: onnx.ModelProto) -> list[str]:
    """Names of the Convs whose data input AND weight input are produced by DequantizeLinear nodes."""
    producer = {out: node.op_type for node in model.graph.node for out in node.output}
    return [node.name for node in model.graph.node if node.op_type == "Conv" and len(node.input) >= 2
            and producer.get(node.input[0]) == producer.get(node.input[1]) == "DequantizeLinear"]


def qdq_adjacent_casts(model: onnx.ModelProto) -> set[str]:
    """Casts next to a Q/DQ node (reading its output or feeding its input): the pattern TensorRT is not
    documented to fuse across."""
    producer = {out: node.op_type for node in model.graph.node for out in node.output}
    qdq_inputs = {name for node in model.graph.node if node.op_type in QDQ for name in node.input}
    return {node.name for node in model.graph.node if node.op_type == "Cast"
            and (producer.get(node.input[0]) in QDQ or node.output[0] in qdq_inputs)}


def file_qdq(model: onnx.ModelProto) -> FileQDQ:
    """The file's quantized convolutions and Q/DQ/Cast node names (unnamed nodes cannot be matched: skipped)."""
    def named(op: str) -> frozenset[str]:
        return frozenset(n.name for n in model.graph.node if n.op_type == op and n.name)
    return FileQDQ(tuple(quantized_convs(model)), named("Conv"), named("QuantizeLinear"), named("DequantizeLinear"),
                   named("Cast"), frozenset(qdq_adjacent_casts(model)))


def file_qdq_of(path: Path) -> FileQDQ:
    """file_qdq of an ONNX file, read without its weights."""
    from export.onnx_io import read_onnx

    return file_qdq(read_onnx(path, weights=False))
