"""The two INT8 files one calibration yields, each in the form NVIDIA's own tools emit for its TensorRT.

TensorRT documents its INT8 convolution fusion for a DequantizeLinear that feeds the convolution directly
(developer guide, "Explicit Quantization": Q/DQ layer placement), and onnx-tensorrt never removes data Casts, so
neither form has a Cast next to a Q/DQ node:

- "fp16-opset19" (TensorRT >= 10.0, the default): ModelOpt's native output, unchanged - opset 19, FP16 math and
  FP16 scales, Q straight on the FP16 tensor, each DQ straight into its consumer; built strongly typed with no
  precision flags (`trtexec --stronglyTyped`). ModelOpt documents TensorRT >= 10.0 for it. ONNX Runtime before 1.30
  truncates FP16 QuantizeLinear on the CPU, so the preview runs the documented twin of runtime/qdq_twin.py.
- "fp32-opset17" (TensorRT 8.6, JetPack 6.0): the same network in FP32 math at opset 17 with FP32 scales, DQ
  straight into Conv, no Casts; built weakly typed with `--int8 --fp16` (FP16 where TensorRT finds it faster, the
  FP32 tail pinned by our build). TensorRT 8.6 parses opset <= 17 and reads Q/DQ scales as FLOAT.

Both come from the same calibration: the FP32 form is the FP16 form with every FP16 constant widened to FP32
(exact) and the FP16 <-> FP32 Casts dropped, so scales, quantized weights and corrected biases are identical
and the INT8 values are the same; only the unquantized math differs (FP16 vs FP32 rounding).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper, version_converter

from calibration.opset17 import to_opset17
from runtime.errors import DeployError
from runtime.qdq_twin import FP16_QDQ_FORM, FP32_QDQ_FORM
from runtime.trt_compat import version_tuple


@dataclass(frozen=True)
class QdqForm:
    name: str            # metadata `qdq_form`
    min_tensorrt: str    # metadata `min_tensorrt`
    opset: int
    suffix: str          # file name ending pipeline/demo use

    def opset_for(self, source_opset: int) -> int:
        """The written file's opset: 17 for TensorRT 8.6; ModelOpt's 19 or the export's own if newer (ONNX's
        converter has no 20 -> 19 adapters, and TensorRT 10.x parses opset 20)."""
        return self.opset if self.opset == 17 else max(self.opset, source_opset)


FP16_FORM = QdqForm(FP16_QDQ_FORM, "10.0", 19, ".int8.onnx")           # trtexec --stronglyTyped
FP32_FORM = QdqForm(FP32_QDQ_FORM, "8.6", 17, ".int8.trt86.onnx")      # trtexec --int8 --fp16
DEFAULT_TRT = FP16_FORM.min_tensorrt


def form_for(trt_version: str) -> QdqForm:
    """The form for a TensorRT version: 8.x -> the FP32 opset-17 form, 10.0 and later -> ModelOpt's FP16 form."""
    try:
        major = version_tuple(trt_version)[0]
    except ValueError:
        raise DeployError(f"--trt-version must look like 8.6 or 10.3, got {trt_version!r}") from None
    if major < 8 or major == 9:
        raise DeployError(f"--trt-version {trt_version}: INT8 files are made for TensorRT 8.6 or 10.0+")
    return FP32_FORM if major == 8 else FP16_FORM


def in_form(body: onnx.ModelProto, form: QdqForm) -> onnx.ModelProto:
    """The calibrated body (ModelOpt's FP16 opset-19 form) in `form`."""
    return body if form is FP16_FORM else fp32_form(body)


def fp32_form(body: onnx.ModelProto) -> onnx.ModelProto:
    """ModelOpt's FP16 Q/DQ body -> the same Q/DQ in FP32 math at opset 17: FP16 initializers and constants
    widened to FP32 (exact), Casts to FP16 made Casts to FP32, then every Cast that no longer changes a type dropped."""
    out = copy.deepcopy(body)
    for t in out.graph.initializer:
        if t.data_type == TensorProto.FLOAT16:
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float32), t.name))
    for node in out.graph.node:
        for a in node.attribute:
            if a.type == onnx.AttributeProto.TENSOR and a.t.data_type == TensorProto.FLOAT16:
                a.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(a.t).astype(np.float32), a.t.name))
            elif node.op_type == "Cast" and a.name == "to" and a.i == TensorProto.FLOAT16:
                a.i = TensorProto.FLOAT
    del out.graph.value_info[:]
    for v in [*out.graph.input, *out.graph.output]:
        if v.type.tensor_type.elem_type == TensorProto.FLOAT16:
            v.type.tensor_type.elem_type = TensorProto.FLOAT
    _drop_identity_casts(out)
    try:
        return to_opset17(onnx.shape_inference.infer_shapes(out))
    except onnx.checker.ValidationError as e:
        raise DeployError(f"the TensorRT 8.6 INT8 form is not a valid model: {str(e).splitlines()[0][:200]}") from None


def _drop_identity_casts(model: onnx.ModelProto) -> None:
    """Remove the Casts whose input already has the target type. Consumers read the Cast's input instead; where
    the Cast wrote a graph output, the tensor before it takes the output's name (so the outputs keep theirs)."""
    types = _elem_types(model)
    outputs = {o.name for o in model.graph.output}
    fixed = {i.name for i in model.graph.input} | {t.name for t in model.graph.initializer} | outputs
    alias: dict[str, str] = {}
    keep = []
    for node in model.graph.node:
        identity = node.op_type == "Cast" and types.get(node.input[0]) == helper.get_attribute_value(node.attribute[0])
        source = _resolve(alias, node.input[0]) if identity else ""
        if not identity or (node.output[0] in outputs and (source in fixed or source in alias)):
            keep.append(node)     # a graph input, initializer or output cannot take another output's name
        elif node.output[0] in outputs:
            alias[source] = node.output[0]
        else:
            alias[node.output[0]] = source
    for node in keep:
        node.input[:] = [_resolve(alias, i) for i in node.input]
        node.output[:] = [_resolve(alias, o) for o in node.output]
    del model.graph.node[:]
    model.graph.node.extend(keep)


def _resolve(alias: dict[str, str], name: str) -> str:
    while name in alias:
        name = alias[name]
    return name


def _elem_types(model: onnx.ModelProto) -> dict[str, int]:
    inferred = onnx.shape_inference.infer_shapes(model)
    values = [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]
    types = {v.name: v.type.tensor_type.elem_type for v in values}
    types.update({t.name: t.data_type for t in model.graph.initializer})
    return types


def opset_of(model: onnx.ModelProto) -> int:
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def to_opset(model: onnx.ModelProto, opset: int) -> onnx.ModelProto:
    """The joined file at its form's opset: 17 through calibration/opset17.py (exact rewrites only); 19 through
    ONNX's version converter (opset 17 -> 19 only moves Reduce* axes to an input and adds FP8 types)."""
    if opset == 17:
        return to_opset17(model)
    if opset_of(model) == opset:
        return model
    try:
        return version_converter.convert_version(model, opset)
    except Exception as e:  # the converter raises RuntimeError/ValueError subclasses of its own
        raise DeployError(f"cannot convert the file to opset {opset}: {str(e).splitlines()[0][:200]}") from None

