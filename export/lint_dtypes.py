"""Per-op tensor types each TensorRT ONNX parser branch documents, for the ops our graphs emit (the body, both
post-processing tails, the FP16 and Q/DQ forms) and their quantized neighbours (ConvTranspose, MatMul, Gemm).
Read from onnx-tensorrt docs/operators.md, column "Supported Types", at the tag each table names; an op
missing from a table is not checked here (its import is checked by export/lint.py). Q/DQ types are checked in
export/lint_qdq.py as the importers read them: a Q without a zero point is UINT8 in ONNX and INT8 in TensorRT."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import onnx
from onnx import TensorProto

from export.lint_graph import attr, node_label

# ONNX element type -> the name operators.md uses
DOC_NAMES: dict[int, str] = {TensorProto.FLOAT: "FP32", TensorProto.FLOAT16: "FP16", TensorProto.BFLOAT16: "BF16",
             TensorProto.INT32: "INT32", TensorProto.INT64: "INT64", TensorProto.INT8: "INT8",
             TensorProto.UINT8: "UINT8", TensorProto.BOOL: "BOOL", TensorProto.FLOAT8E4M3FN: "FP8"}
if hasattr(TensorProto, "INT4"):
    DOC_NAMES[TensorProto.INT4] = "INT4"
# Which tensors the "Supported Types" column is about: the data inputs (not indices, shapes or conditions).
CHECKED_INPUTS: dict[str, tuple[int, ...]] = {"Where": (1, 2), "ScatterND": (0, 2)}


@dataclass(frozen=True)
class OpDtypes:
    """One parser branch's supported types per op, as read in `source`."""
    source: str
    types: Mapping[str, frozenset[str]]
    int64_as_int32: bool = False      # 8.6 casts INT64 down to INT32 (operators.md's note), so INT64 counts as INT32


def _table(text: str) -> dict[str, frozenset[str]]:
    """'Op Op2: T1 T2' lines -> {op: types}."""
    table: dict[str, frozenset[str]] = {}
    for line in text.strip().splitlines():
        ops, types = line.split(":")
        table.update({op: frozenset(types.split()) for op in ops.split()})
    return table


_COMMON_86 = """
Add Sub Mul Div Mod Equal Greater GreaterOrEqual TopK: FP32 FP16 INT32
Exp ReduceMax ReduceMean ReduceSum Resize NonMaxSuppression MatMul: FP32 FP16
Conv ConvTranspose Gemm MaxPool Sigmoid: FP32 FP16 INT8
Concat Reshape Shape Slice Transpose Unsqueeze Identity Gather GatherElements GatherND: FP32 FP16 INT32 INT8 BOOL
ScatterND: FP32 FP16 INT8 INT32
Where: FP32 FP16 INT32 BOOL
Cast: FP32 FP16 INT32 INT8 UINT8 BOOL
ConstantOfShape: FP32
"""
_COMMON_10 = """
Add Sub Mul Div Mod Equal Greater GreaterOrEqual TopK: FP32 FP16 BF16 INT32 INT64
ReduceMax ReduceMean ReduceSum ScatterND: FP32 FP16 BF16 INT32 INT64
Exp Resize MaxPool Sigmoid Conv ConvTranspose MatMul Gemm: FP32 FP16 BF16
NonMaxSuppression: FP32 FP16
Concat Reshape Shape Slice Transpose Unsqueeze Identity: FP32 FP16 BF16 INT32 INT64 BOOL
Gather GatherElements GatherND Where: FP32 FP16 BF16 INT32 INT64 BOOL
Cast: FP32 FP16 BF16 INT32 INT64 UINT8 BOOL
"""
OPS_86 = OpDtypes("onnx-tensorrt release/8.6-GA docs/operators.md, Supported Types", _table(_COMMON_86),
                  int64_as_int32=True)
OPS_100 = OpDtypes("onnx-tensorrt release/10.0-GA docs/operators.md, Supported Types",
                   _table(_COMMON_10 + "ConstantOfShape: FP32"))
OPS_101 = OpDtypes("onnx-tensorrt release/10.1-GA docs/operators.md, Supported Types (the newest read)",
                   _table(_COMMON_10 + "ConstantOfShape: FP32 FP16 BF16 INT32 INT64 BOOL"))


def _checked_types(node: onnx.NodeProto, types: Mapping[str, int]) -> list[int]:
    """The element types the op's "Supported Types" constrain (0 where inference left one unknown)."""
    if node.op_type == "ConstantOfShape":
        value = attr(node, "value", None)
        return [value.data_type if isinstance(value, onnx.TensorProto) else TensorProto.FLOAT]
    names = [node.input[i] for i in CHECKED_INPUTS.get(node.op_type, (0,)) if i < len(node.input) and node.input[i]]
    if node.op_type == "Cast":
        names += list(node.output[:1])
    return [types.get(name, 0) for name in names]


def dtype_problems(node: onnx.NodeProto, types: Mapping[str, int], table: OpDtypes, version: str) -> list[str]:
    """A finding for each checked tensor whose type the parser branch does not list for this op."""
    allowed = table.types.get(node.op_type)
    if allowed is None:
        return []
    problems = []
    for elem in _checked_types(node, types):
        if elem == TensorProto.INT64 and table.int64_as_int32:
            elem = TensorProto.INT32
        name = DOC_NAMES.get(elem)
        if elem and name not in allowed and elem != TensorProto.DOUBLE:   # DOUBLE: export/lint.py's own finding
            problems.append(f"{node_label(node)}: {name or TensorProto.DataType.Name(elem)} is not among TensorRT "
                            f"{version}'s supported types for {node.op_type} ({', '.join(sorted(allowed))}; "
                            f"{table.source})")
    return problems
