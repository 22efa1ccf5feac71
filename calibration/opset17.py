"""Opset 19 -> 17 for the network bodies ModelOpt writes, so FP16/INT8 files parse on TensorRT 8.6.

TensorRT 8.6's ONNX parser supports opset <= 17 (onnx-tensorrt 8.6 README), and its ReduceMean importer reads
only the `axes` attribute: fed opset-18 ReduceMean (axes as an input) it averages over every axis, which breaks
squeeze-excite. onnx.version_converter has no Resize adapter for 19 -> 17, so the few changes are done here,
each only where the opset-17 form means exactly the same; anything else is refused (DeployError), never guessed:
- Reduce* (18): the constant `axes` input becomes the attribute.
- Resize (18, 19): `antialias`, `axes`, `keep_aspect_ratio_policy` dropped when at their defaults.
- QuantizeLinear / DequantizeLinear (19): per-tensor or per-axis (no block_size, opset 21), int8/uint8 only,
  FP32 scales; `saturate` (FP8 only) dropped. FP16 scales (opset 19, ModelOpt's FP16 output) are refused: wrapping
  them in Casts is exact but no form TensorRT documents a fusion for; the TensorRT 8.6 INT8 form is
  calibration/qdq_forms.py:fp32_form (FP32 math, FP32 scales, no Casts).
- Cast (19): `saturate` (FP8 only) dropped.
- Constant (19): allowed unless it holds an FP8 tensor (the only opset-19 addition); Cast to FP8 refused.
- Ops whose opset-19 version only added FP8 types (Reshape, Shape, Size, Identity, Equal, CastLike) are kept.
- AveragePool (19, dilations), Pad (18 axes, 19 wrap), ScatterElements/ScatterND (18 max/min): kept when the
  new feature is unused, refused otherwise. Ops new after 17 (Col2Im, GroupNormalization, ...) are refused.
"""
from __future__ import annotations

import copy

import numpy as np
import onnx
from onnx import defs, helper, numpy_helper

from export.lint import oldest_tensorrt_for_opset
from runtime.errors import DeployError

TARGET = 17
MIN_TENSORRT: str = oldest_tensorrt_for_opset(TARGET) or ""   # metadata `min_tensorrt`, from lint's parser table
assert MIN_TENSORRT, "export/lint.py PARSER_RULES must cover opset 17"
IR_VERSION = 8          # ONNX 1.12's IR, the one paired with opset 17
REDUCE_OPS = {"ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceLogSum",
              "ReduceLogSumExp", "ReduceSumSquare"}   # ReduceSum moved axes to an input at opset 13 already
RESIZE_DEFAULTS = {"antialias": 0, "keep_aspect_ratio_policy": b"stretch"}
QDQ_TYPES = {onnx.TensorProto.INT8, onnx.TensorProto.UINT8}
FP8_TYPES = {onnx.TensorProto.FLOAT8E4M3FN, onnx.TensorProto.FLOAT8E4M3FNUZ, onnx.TensorProto.FLOAT8E5M2,
             onnx.TensorProto.FLOAT8E5M2FNUZ}
TYPES_ONLY = {"Reshape", "Shape", "Size", "Identity", "Equal", "CastLike"}   # opset 19 added FP8 types only
HANDLED = REDUCE_OPS | TYPES_ONLY | {"Resize", "QuantizeLinear", "DequantizeLinear", "Cast", "Constant",
                                     "AveragePool", "Pad", "ScatterElements", "ScatterND"}


def _constants(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    values = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return values


def _attr(node: onnx.NodeProto, name: str) -> onnx.AttributeProto | None:
    return next((a for a in node.attribute if a.name == name), None)


def _drop_attr(node: onnx.NodeProto, name: str) -> None:
    keep = [a for a in node.attribute if a.name != name]
    del node.attribute[:]
    node.attribute.extend(keep)


def _reduce(node: onnx.NodeProto, consts: dict[str, np.ndarray]) -> None:
    if len(node.input) < 2 or not node.input[1]:
        return
    if node.input[1] not in consts:
        raise DeployError(f"{node.name}: {node.op_type} axes are computed at run time; opset 17 needs constants")
    node.attribute.append(helper.make_attribute("axes", [int(a) for a in consts[node.input[1]].ravel()]))
    del node.input[1:]


def _resize(node: onnx.NodeProto) -> None:
    if _attr(node, "axes") is not None:
        raise DeployError(f"{node.name}: Resize with `axes` (opset 18) has no opset-17 form")
    for name, default in RESIZE_DEFAULTS.items():
        a = _attr(node, name)
        if a is not None and helper.get_attribute_value(a) != default:
            raise DeployError(f"{node.name}: Resize {name}={helper.get_attribute_value(a)!r} needs opset 18+")
        _drop_attr(node, name)
    mode = _attr(node, "coordinate_transformation_mode")
    if mode is not None and mode.s == b"half_pixel_symmetric":
        raise DeployError(f"{node.name}: Resize half_pixel_symmetric needs opset 19")


def _qdq(node: onnx.NodeProto, consts: dict[str, np.ndarray]) -> None:
    if _attr(node, "block_size") is not None:
        raise DeployError(f"{node.name}: blocked quantization needs opset 21")
    scale = consts.get(node.input[1])
    if scale is None or scale.dtype not in (np.float32, np.float16):
        raise DeployError(f"{node.name}: {node.op_type} scale must be a float32/float16 constant "
                          f"(got {None if scale is None else scale.dtype})")
    if scale.dtype == np.float16:
        raise DeployError(f"{node.name}: {node.op_type} with an FP16 scale needs opset 19 (TensorRT >= 10.0); the "
                          "TensorRT 8.6 form has FP32 scales (quantize --trt-version 8.6)")
    zero = consts.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    if zero is not None and helper.np_dtype_to_tensor_dtype(zero.dtype) not in QDQ_TYPES:
        raise DeployError(f"{node.name}: {zero.dtype} quantization needs opset 19+ (opset 17: int8/uint8)")
    _drop_attr(node, "saturate")


def _cast(node: onnx.NodeProto) -> None:
    to = _attr(node, "to")
    if to is not None and to.i in FP8_TYPES:
        raise DeployError(f"{node.name}: Cast to FP8 needs opset 19")
    _drop_attr(node, "saturate")


def _unused_new_features(node: onnx.NodeProto) -> None:
    """AveragePool dilations (19), Pad axes (18) / wrap (19), Scatter* max/min (18): refused when used."""
    def value(name: str) -> object:
        a = _attr(node, name)
        return None if a is None else helper.get_attribute_value(a)
    used = {"AveragePool": value("dilations") not in (None, [1] * len(value("dilations") or [])),
            "Pad": (len(node.input) > 3 and bool(node.input[3])) or value("mode") == b"wrap",
            "ScatterElements": value("reduction") in (b"max", b"min"),
            "ScatterND": value("reduction") in (b"max", b"min")}[node.op_type]
    if used:
        raise DeployError(f"{node.name}: {node.op_type} uses a feature added after opset 17")
    if node.op_type == "AveragePool":
        _drop_attr(node, "dilations")


def _check_known(node: onnx.NodeProto) -> None:
    """Refuse ops that do not exist at opset 17 or changed after it without a rule here."""
    try:
        defs.get_schema(node.op_type, TARGET)
    except defs.SchemaError:
        raise DeployError(f"{node.name}: {node.op_type} does not exist at opset 17") from None
    schema = defs.get_schema(node.op_type, 19)
    if schema.since_version > TARGET and node.op_type not in HANDLED:
        raise DeployError(f"{node.name}: {node.op_type} changed at opset {schema.since_version}; "
                          "no exact opset-17 rewrite is known here")


def to_opset17(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of `model` (default-domain opset <= 19) rewritten to opset 17 and IR version 8."""
    out = copy.deepcopy(model)
    consts = _constants(out)
    for node in out.graph.node:
        if node.domain not in ("", "ai.onnx"):
            continue
        _check_known(node)
        if node.op_type in REDUCE_OPS:
            _reduce(node, consts)
        elif node.op_type == "Resize":
            _resize(node)
        elif node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            _qdq(node, consts)
        elif node.op_type == "Cast":
            _cast(node)
        elif node.op_type in ("AveragePool", "Pad", "ScatterElements", "ScatterND"):
            _unused_new_features(node)
        elif node.op_type == "Constant" and any(a.t.data_type in FP8_TYPES for a in node.attribute if a.name == "value"):
            raise DeployError(f"{node.name}: an FP8 constant needs opset 19")
    for opset in out.opset_import:
        if opset.domain in ("", "ai.onnx"):
            opset.version = min(opset.version, TARGET)
    out.ir_version = min(out.ir_version, IR_VERSION)
    _drop_unused_constants(out)
    onnx.checker.check_model(out)
    return out


def _drop_unused_constants(model: onnx.ModelProto) -> None:
    """The `axes` tensors the Reduce rewrite no longer reads."""
    used = {i for n in model.graph.node for i in n.input} | {o.name for o in model.graph.output}
    keep = [n for n in model.graph.node if n.op_type != "Constant" or n.output[0] in used]
    del model.graph.node[:]
    model.graph.node.extend(keep)
    inits = [t for t in model.graph.initializer if t.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(inits)
