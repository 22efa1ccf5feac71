"""TensorRT-compatibility lint: every op is one the TensorRT ONNX parser imports, no unsupported dtypes,
plugin attributes valid. Names the offending node. Run at the end of every export.

    python -m export.lint model.onnx
"""
from __future__ import annotations

import sys

import onnx
from onnx import TensorProto

# Ops the TensorRT 10.x ONNX parser imports natively, from onnx-tensorrt `docs/operators.md`
# (TensorRT 10.13 / 10.x branch; the subset an EfficientDet graph and its post-processing can contain,
# plus common neighbours). Keep in this one place.
TRT_SUPPORTED_OPS = frozenset("""
Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization Cast Ceil Clip
Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh CumSum DepthToSpace DequantizeLinear Div
Einsum Elu Equal Erf Exp Expand Flatten Floor Gather GatherElements GatherND Gelu Gemm GlobalAveragePool
GlobalMaxPool Greater GreaterOrEqual HardSigmoid HardSwish Identity If InstanceNormalization
LayerNormalization LeakyRelu Less LessOrEqual Log LogSoftmax Loop LRN MatMul Max MaxPool Mean Min Mod Mul
Neg NonMaxSuppression NonZero Not OneHot Or Pad Pow PRelu QuantizeLinear Range Reciprocal ReduceL1
ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum
ReduceSumSquare Relu Reshape Resize Round ScatterElements ScatterND Selu Shape Sigmoid Sign Sin Sinh Size
Slice Softmax Softplus Softsign SpaceToDepth Split Sqrt Squeeze Sub Sum Tan Tanh ThresholdedRelu Tile
TopK Transpose Unsqueeze Where Xor
""".split())
TRT_SOURCE = "onnx-tensorrt operators.md, TensorRT 10.13"
TRT_TOPK_MAX_K = 3840
UNSUPPORTED_DTYPES = {TensorProto.DOUBLE: "float64", TensorProto.STRING: "string",
                      TensorProto.COMPLEX64: "complex64", TensorProto.COMPLEX128: "complex128"}

# EfficientNMS_TRT attributes: name -> (type, check)
PLUGIN_ATTRS = {
    "EfficientNMS_TRT": {
        "plugin_version": (str, lambda v: v == "1"),
        "background_class": (int, lambda v: v >= -1),
        "max_output_boxes": (int, lambda v: 0 < v <= 4096),
        "score_threshold": (float, lambda v: 0.0 <= v <= 1.0),
        "iou_threshold": (float, lambda v: 0.0 <= v <= 1.0),
        "score_activation": (int, lambda v: v in (0, 1)),
        "class_agnostic": (int, lambda v: v in (0, 1)),
        "box_coding": (int, lambda v: v in (0, 1)),
    }
}


def _node_label(node: onnx.NodeProto) -> str:
    return f"node '{node.name or '?'}' ({node.op_type})"


def _check_plugin(node: onnx.NodeProto) -> list[str]:
    spec = PLUGIN_ATTRS[node.op_type]
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    problems = [f"{_node_label(node)}: missing attribute {n}" for n in spec if n not in attrs]
    for name, value in attrs.items():
        if name not in spec:
            problems.append(f"{_node_label(node)}: unknown attribute {name}")
            continue
        kind, ok = spec[name]
        value = value.decode() if isinstance(value, bytes) else value
        if not isinstance(value, kind) or not ok(value):
            problems.append(f"{_node_label(node)}: invalid {name}={value!r}")
    if len(node.input) not in (2, 3) or len(node.output) != 4:
        problems.append(f"{_node_label(node)}: needs 2-3 inputs and 4 outputs")
    return problems


def lint(model: onnx.ModelProto) -> list[str]:
    """All problems found, one line each (empty list = TensorRT should parse this graph)."""
    problems: list[str] = []
    g = model.graph
    consts = {t.name: t for t in g.initializer}
    for node in g.node:
        if node.op_type in PLUGIN_ATTRS:
            problems += _check_plugin(node)
        elif node.op_type not in TRT_SUPPORTED_OPS:
            problems.append(f"{_node_label(node)}: op not supported by the TensorRT ONNX parser ({TRT_SOURCE})")
        if node.op_type == "TopK" and len(node.input) > 1 and node.input[1] in consts:
            k = int(onnx.numpy_helper.to_array(consts[node.input[1]]).reshape(-1)[0])
            if k > TRT_TOPK_MAX_K:
                problems.append(f"{_node_label(node)}: TopK K={k} exceeds TensorRT's limit {TRT_TOPK_MAX_K}")
        if node.op_type == "Cast":
            to = next(a.i for a in node.attribute if a.name == "to")
            if to in UNSUPPORTED_DTYPES:
                problems.append(f"{_node_label(node)}: casts to {UNSUPPORTED_DTYPES[to]}")
    for t in g.initializer:
        if t.data_type in UNSUPPORTED_DTYPES:
            problems.append(f"initializer '{t.name}': dtype {UNSUPPORTED_DTYPES[t.data_type]} not supported")
    for v in list(g.input) + list(g.output) + list(g.value_info):
        if v.type.tensor_type.elem_type in UNSUPPORTED_DTYPES:
            problems.append(f"tensor '{v.name}': dtype {UNSUPPORTED_DTYPES[v.type.tensor_type.elem_type]} not supported")
    return problems


def main(argv: list[str] | None = None) -> int:
    path = (argv or sys.argv[1:])[0]
    problems = lint(onnx.load(path))
    for p in problems:
        print(f"{path}: {p}")
    print(f"{path}: {'OK' if not problems else f'{len(problems)} problem(s)'}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
