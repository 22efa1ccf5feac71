"""TensorRT-compatibility lint for a target TensorRT version: every op is one that version's ONNX parser
imports, the opset is within its range, the attributes, inputs and tensor types of the ops we emit are ones
the parser accepts (export/lint_dtypes.py), plugin attributes are valid, NonMaxSuppression never sees more
boxes than INMSLayer keeps, and Q/DQ sit where TensorRT fuses them (export/lint_qdq.py). Names the offending
node. Run at the end of every export and quantize (target: the file's `min_tensorrt`, else 8.6).

    effdet-deploy lint model.onnx [--trt-version 10.3]      (or: python -m export.lint ...)
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from export.lint_dtypes import OPS_86, OPS_100, OPS_101, OpDtypes, dtype_problems
from export.lint_graph import attr, node_label
from export.lint_qdq import check_qdq, placement_problems, weight_axis_problems
from runtime.trt_compat import version_tuple

# Ops the TensorRT 10.x ONNX parser imports natively, from onnx-tensorrt `docs/operators.md`
# (10.1-GA and 10.15; the subset an EfficientDet graph and its post-processing can contain, plus common
# neighbours). Per-branch exceptions are in ParserRules.missing_ops.
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
UNSUPPORTED_DTYPES = {TensorProto.DOUBLE: "float64", TensorProto.STRING: "string",
                      TensorProto.COMPLEX64: "complex64", TensorProto.COMPLEX128: "complex128"}
REDUCE_OPS = frozenset({"ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMean",
                        "ReduceMin", "ReduceProd", "ReduceSum", "ReduceSumSquare"})
# Resize: the same lists in operators.md of 8.6-GA, 10.1-GA and 10.15 (onnx-tensorrt, since 8.0).
RESIZE_TRANSFORMS = frozenset({"half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn", "asymmetric",
                               "align_corners"})
RESIZE_MODES = frozenset({"nearest", "linear"})
RESIZE_NEAREST_MODES = frozenset({"floor", "ceil", "round_prefer_floor", "round_prefer_ceil"})


@dataclass(frozen=True)
class ParserRules:
    """What one TensorRT ONNX parser branch accepts, from the version `since` on, as read in `source`."""
    since: tuple[int, int]
    source: str
    max_opset: int
    topk_max_k: int               # largest K TopK takes
    reduce_axes_input: str        # "sum-only": 8.6 reads an axes input for ReduceSum only; "constant": all Reduce*
    op_dtypes: OpDtypes            # per-op supported tensor types (export/lint_dtypes.py)
    missing_ops: frozenset[str] = frozenset()
    nms_max_boxes: int = 5000     # INMSLayer keeps the top 5000 boxes (2000 on SM 5.3/6.2), NvInfer.h 8.6.1-11.0


# One table. Versions between rows take the row above (the oldest reading that applies).
PARSER_RULES = (
    ParserRules((8, 6), "onnx-tensorrt 8.6-GA docs/operators.md + builtin_op_importers.cpp (reduceTensor; "
                "ITopKLayer 'up to 3840', NvInfer.h v8.6.1)", max_opset=17, topk_max_k=3840,
                reduce_axes_input="sum-only", op_dtypes=OPS_86, missing_ops=frozenset({"Gelu"})),
    ParserRules((10, 0), "onnx-tensorrt 10.0-GA/10.1-GA docs/operators.md ('opset 9 to opset 20'; TopK K < 3840; "
                "Reduce* axes must be an initializer)", max_opset=20, topk_max_k=3839, reduce_axes_input="constant",
                op_dtypes=OPS_100),
    ParserRules((10, 15), "onnx-tensorrt docs/operators.md at TensorRT 10.15 ('opset 9 to opset 24')",
                max_opset=24, topk_max_k=3839, reduce_axes_input="constant", op_dtypes=OPS_101),
    ParserRules((11, 0), "no 11.x operators.md read: 10.15's rules kept (TensorRT v11.0 CHANGELOG lists parser "
                "additions only; opset 25 arrived in 11.5)", max_opset=24, topk_max_k=3839,
                reduce_axes_input="constant", op_dtypes=OPS_101),
    ParserRules((11, 5), "TensorRT v11.5 release notes ('Added support for ONNX opset 25'); NVIDIA ONNX Opset Guide "
                "for 11.x: maximum opset 25", max_opset=25, topk_max_k=3839, reduce_axes_input="constant",
                op_dtypes=OPS_101),
)
DEFAULT_TRT = "8.6"


def rules_for(trt_version: str) -> ParserRules:
    """The table row for a TensorRT version ('10.3', '10.13.0.35'); ValueError below 8.6 or unparsable."""
    try:
        version = version_tuple(trt_version)
    except ValueError:
        raise ValueError(f"TensorRT version '{trt_version}' is not MAJOR.MINOR") from None
    rows = [r for r in PARSER_RULES if r.since <= version]
    if not rows:
        raise ValueError(f"TensorRT {trt_version} is older than the oldest supported (8.6)")
    return rows[-1]


def oldest_tensorrt_for_opset(opset: int) -> str | None:
    """The oldest TensorRT in PARSER_RULES whose parser takes this opset ('8.6', '10.0', ...); None past the table."""
    for rules in PARSER_RULES:
        if opset <= rules.max_opset:
            return ".".join(map(str, rules.since))
    return None


# EfficientNMS_TRT attributes: name -> (type, check). The plugin ships in 8.6-11.0 (deprecated since 10.12:
# TensorRT plugin/efficientNMSPlugin/README.md at v11.0).
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


def _check_plugin(node: onnx.NodeProto) -> list[str]:
    spec = PLUGIN_ATTRS[node.op_type]
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    problems = [f"{node_label(node)}: missing attribute {n}" for n in spec if n not in attrs]
    for name, value in attrs.items():
        if name not in spec:
            problems.append(f"{node_label(node)}: unknown attribute {name}")
            continue
        kind, ok = spec[name]
        value = value.decode() if isinstance(value, bytes) else value
        if not isinstance(value, kind) or not ok(value):
            problems.append(f"{node_label(node)}: invalid {name}={value!r}")
    if len(node.input) not in (2, 3) or len(node.output) != 4:
        problems.append(f"{node_label(node)}: needs 2-3 inputs and 4 outputs")
    return problems


@dataclass
class _Context:
    """What node checks need: the rules, constant tensors (initializers and Constant outputs), known shapes and
    element types, and who writes and reads each tensor."""
    rules: ParserRules
    version: str
    tensors: dict[str, onnx.TensorProto]
    shapes: dict[str, list[int | None]]
    types: dict[str, int] = field(default_factory=dict)                       # tensor name -> TensorProto type
    producers: dict[str, onnx.NodeProto] = field(default_factory=dict)        # tensor name -> the node writing it
    consumers: dict[str, list[onnx.NodeProto]] = field(default_factory=dict)  # tensor name -> the nodes reading it
    opset: int | None = None

    def const(self, name: str) -> np.ndarray | None:
        """The value of a constant input, or None when it is computed at run time."""
        tensor = self.tensors.get(name)
        return None if tensor is None else numpy_helper.to_array(tensor)


def _constants(g: onnx.GraphProto) -> dict[str, onnx.TensorProto]:
    """Initializers and Constant-node outputs: what onnx-tensorrt imports as weights ("an initializer")."""
    consts = {t.name: t for t in g.initializer}
    for node in g.node:
        if node.op_type == "Constant":
            value = next((a.t for a in node.attribute if a.name == "value"), None)
            if value is not None:
                consts[node.output[0]] = value
    return consts


def _value_infos(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    """Every tensor's inferred type and static dims, inferred with a symbolic batch set to 1: per-image
    sizes (the boxes NonMaxSuppression sees) do not depend on the batch, and a dynamic batch hides them."""
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    del fixed.graph.value_info[:]   # earlier inference results keep the symbolic dims
    for graph_input in fixed.graph.input:
        dims = graph_input.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_value = 1
    try:
        model = onnx.shape_inference.infer_shapes(fixed, data_prop=True)
    except Exception:            # a graph ONNX cannot infer (custom ops): keep what the file states
        pass
    return list(model.graph.input) + list(model.graph.value_info) + list(model.graph.output)


def _context(model: onnx.ModelProto, version: str) -> _Context:
    """The rules for `version` and everything node checks read about the graph."""
    infos, consts = _value_infos(model), _constants(model.graph)
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    return _Context(
        rules_for(version), version, consts,
        shapes={v.name: [d.dim_value if d.HasField("dim_value") else None for d in v.type.tensor_type.shape.dim]
                for v in infos},
        types={**{v.name: v.type.tensor_type.elem_type for v in infos}, **{n: t.data_type for n, t in consts.items()}},
        producers={out: node for node in model.graph.node for out in node.output},
        consumers=consumers, opset=_opset(model))


def _check_topk(node: onnx.NodeProto, c: _Context) -> list[str]:
    problems = []
    if attr(node, "sorted", 1) != 1:
        problems.append(f"{node_label(node)}: TopK sorted=0; the TensorRT parser needs sorted=1 ({c.rules.source})")
    k = c.const(node.input[1]) if len(node.input) > 1 else np.array([attr(node, "k", 0)])
    if k is None:
        problems.append(f"{node_label(node)}: TopK K is not a constant, so TensorRT's limit "
                        f"(K <= {c.rules.topk_max_k}) cannot be guaranteed")
    elif int(k.reshape(-1)[0]) > c.rules.topk_max_k:
        problems.append(f"{node_label(node)}: TopK K={int(k.reshape(-1)[0])} exceeds TensorRT {c.version}'s limit "
                        f"K <= {c.rules.topk_max_k} ({c.rules.source})")
    return problems


def _check_scatter_nd(node: onnx.NodeProto, c: _Context) -> list[str]:
    """8.6 ignores `reduction` (imports any as plain assignment: builtin_op_importers.cpp 8.6-GA ScatterND);
    10.x rejects the attribute when present at all, even 'none' (onnxOpImporters.cpp 10.1-GA ScatterND
    ASSERT_NODE(!attrs.count("reduction")))."""
    reduction = attr(node, "reduction", "none")
    if reduction != "none":
        return [f"{node_label(node)}: ScatterND reduction='{reduction}'; TensorRT supports 'none' only "
                f"({c.rules.source})"]
    if c.rules.since >= (10, 0) and any(a.name == "reduction" for a in node.attribute):
        return [f"{node_label(node)}: ScatterND has a reduction attribute (even 'none'); TensorRT {c.version}'s "
                f"parser rejects it: leave it out ({c.rules.source})"]
    return []


def _check_resize(node: onnx.NodeProto, c: _Context) -> list[str]:
    allowed = (("mode", "nearest", RESIZE_MODES), ("coordinate_transformation_mode", "half_pixel", RESIZE_TRANSFORMS),
               ("nearest_mode", "round_prefer_floor", RESIZE_NEAREST_MODES),
               ("keep_aspect_ratio_policy", "stretch", frozenset({"stretch"})), ("antialias", 0, frozenset({0})))
    return [f"{node_label(node)}: Resize {name}={value!r} is not supported by the TensorRT parser ({c.rules.source})"
            for name, default, ok in allowed if (value := attr(node, name, default)) not in ok]


def _check_resize_pairs(node: onnx.NodeProto, c: _Context) -> list[str]:
    """tf_half_pixel_for_nn: 8.6 rejects any nearest_mode but round_prefer_floor (builtin_op_importers.cpp
    8.6-GA Resize); 10.x accepts any and computes round_prefer_floor (onnxOpImporters.cpp 10.1-GA Resize)."""
    if (attr(node, "coordinate_transformation_mode", "half_pixel") == "tf_half_pixel_for_nn"
            and attr(node, "nearest_mode", "round_prefer_floor") != "round_prefer_floor"):
        return [f"{node_label(node)}: Resize tf_half_pixel_for_nn with nearest_mode="
                f"{attr(node, 'nearest_mode', '')!r}: TensorRT rounds round_prefer_floor ({c.rules.source})"]
    return []


def _check_pool(node: onnx.NodeProto, c: _Context) -> list[str]:
    """Dilations: 8.6 rejects them, 10.x ignores them (importerUtils.cpp 10.1-GA poolingHelper passes none);
    ceil_mode=1: TensorRT's kEXPLICIT_ROUND_UP keeps a last window starting in the end padding, which ONNX
    Runtime drops (NvInfer.h v8.6.1 PaddingMode), so the output sizes can differ."""
    problems = []
    if any(d != 1 for d in attr(node, "dilations", [])):
        problems.append(f"{node_label(node)}: {node.op_type} dilations {list(attr(node, 'dilations', []))}: "
                        f"TensorRT pools undilated ({c.rules.source})")
    if attr(node, "ceil_mode", 0):
        problems.append(f"{node_label(node)}: {node.op_type} ceil_mode=1: TensorRT's round-up output size can "
                        f"differ from ONNX Runtime's ({c.rules.source}); use ceil_mode=0 with explicit pads")
    return problems


def _check_reduce(node: onnx.NodeProto, c: _Context) -> list[str]:
    if len(node.input) < 2 or not node.input[1]:
        return []
    if c.rules.reduce_axes_input == "sum-only" and node.op_type != "ReduceSum":
        return [f"{node_label(node)}: {node.op_type} with an axes input: TensorRT {c.version}'s parser ignores it "
                f"and reduces over all axes ({c.rules.source}); use the axes attribute (opset <= 17)"]
    if node.input[1] not in c.tensors:
        return [f"{node_label(node)}: {node.op_type} axes must be a constant (an initializer) ({c.rules.source})"]
    return []


def _check_nms(node: onnx.NodeProto, c: _Context) -> list[str]:
    """INMSLayer's limit counts (box, class) candidates sorted without regard to class; checking the box count
    assumes each box scores above the threshold in one class at most, as the --nms onnx tail guarantees
    (export/postprocess.py: one class per candidate, the others below the score floor)."""
    dims = c.shapes.get(node.input[0], [])
    boxes = dims[1] if len(dims) == 3 else None
    if boxes is None:
        return [f"{node_label(node)}: NonMaxSuppression box count is not static, so INMSLayer's limit of "
                f"{c.rules.nms_max_boxes} boxes (it keeps only the top ones) cannot be guaranteed"]
    if boxes > c.rules.nms_max_boxes:
        return [f"{node_label(node)}: NonMaxSuppression on {boxes} boxes; TensorRT's INMSLayer keeps only the top "
                f"{c.rules.nms_max_boxes} (NvInfer.h INMSLayer): put a TopK of <= {c.rules.nms_max_boxes} before it"]
    return []


def _check_cast(node: onnx.NodeProto, c: _Context) -> list[str]:
    to = next((a.i for a in node.attribute if a.name == "to"), 0)
    if to in UNSUPPORTED_DTYPES:
        return [f"{node_label(node)}: casts to {UNSUPPORTED_DTYPES[to]}"]
    return []


NODE_CHECKS = {"TopK": _check_topk, "ScatterND": _check_scatter_nd,
               "Resize": lambda n, c: _check_resize(n, c) + _check_resize_pairs(n, c),
               "MaxPool": _check_pool, "AveragePool": _check_pool,
               "QuantizeLinear": check_qdq, "DequantizeLinear": check_qdq, "NonMaxSuppression": _check_nms,
               "Cast": _check_cast, **{op: _check_reduce for op in REDUCE_OPS}}


def _opset(model: onnx.ModelProto) -> int | None:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)


def target_version(model: onnx.ModelProto, trt_version: str | None = None) -> str:
    """The TensorRT version to lint for: the argument, else the file's `min_tensorrt`, else 8.6."""
    meta = {p.key: p.value for p in model.metadata_props}
    return trt_version or meta.get("min_tensorrt") or DEFAULT_TRT


def lint(model: onnx.ModelProto, trt_version: str | None = None) -> list[str]:
    """All problems found for the target TensorRT, one line each (empty list = TensorRT should parse this graph)."""
    version = target_version(model, trt_version)
    c = _context(model, version)
    problems: list[str] = []
    if c.opset is not None and c.opset > c.rules.max_opset:
        problems.append(f"opset {c.opset} is above TensorRT {version}'s parser range (<= {c.rules.max_opset}; "
                        f"{c.rules.source})")
    for node in model.graph.node:
        if node.op_type in PLUGIN_ATTRS:
            problems += _check_plugin(node)
        elif node.op_type not in TRT_SUPPORTED_OPS or node.op_type in c.rules.missing_ops:
            problems.append(f"{node_label(node)}: op not supported by TensorRT {version}'s ONNX parser "
                            f"({c.rules.source})")
        problems += NODE_CHECKS.get(node.op_type, lambda n, c: [])(node, c)
        problems += dtype_problems(node, c.types, c.rules.op_dtypes, version)
        problems += placement_problems(node, c) + weight_axis_problems(node, c)
    return problems + _dtype_problems(model.graph)


def _dtype_problems(g: onnx.GraphProto) -> list[str]:
    problems = [f"initializer '{t.name}': dtype {UNSUPPORTED_DTYPES[t.data_type]} not supported"
                for t in g.initializer if t.data_type in UNSUPPORTED_DTYPES]
    for v in list(g.input) + list(g.output) + list(g.value_info):
        if v.type.tensor_type.elem_type in UNSUPPORTED_DTYPES:
            problems.append(f"tensor '{v.name}': dtype {UNSUPPORTED_DTYPES[v.type.tensor_type.elem_type]} not supported")
    return problems


def report(path: Path, trt_version: str | None = None) -> int:
    """Lint one file and print one line per finding, then a summary line: 0 clean, 1 findings. Bad input (not
    a readable ONNX file, an unknown TensorRT version) raises DeployError (exit 2 in both command lines)."""
    from export.onnx_io import read_onnx
    from runtime.errors import DeployError

    model = read_onnx(path)                   # DeployError naming the file when it is not ONNX
    try:
        version = target_version(model, trt_version)
        problems = lint(model, version)
    except ValueError as e:
        raise DeployError(f"{'--trt-version' if trt_version else f'{path}: metadata min_tensorrt'}: {e}") from None
    for p in problems:
        print(f"{path}: {p}")
    print(f"{path}: TensorRT {version}: {'OK' if not problems else f'{len(problems)} problem(s)'}")
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    """`python -m export.lint FILE [--trt-version V]`, the same as `effdet-deploy lint`."""
    parser = argparse.ArgumentParser(prog="python -m export.lint", description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--trt-version", default=None,
                        help=f"target TensorRT (default: the file's min_tensorrt, else {DEFAULT_TRT})")
    args = parser.parse_args(argv if argv is not None else sys.argv[1:])
    return report(Path(args.model), args.trt_version)


if __name__ == "__main__":
    from runtime.errors import DeployError

    try:
        raise SystemExit(main())
    except DeployError as e:                  # one line, exit 2, as the CLI (DESIGN section 4)
        print(f"export.lint: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
