"""Strongly typed FP16: weights and math in FP16 via ModelOpt AutoCast, the tail kept FP32 as is.

What stays FP32 lives in FP32_OPS below, each with the reason. Inputs and outputs keep the FP32 file's
dtypes (keep_io_types), so the runtime and the tail see the same tensors in every precision.
"""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np
import onnx

from calibration.graph_split import join, split
from calibration.opset17 import MIN_TENSORRT, to_opset17
from runtime.lazy import lazy_import
from runtime.model_info import ModelInfo

# op type -> why it stays FP32 inside the network body (the tail - decoding, sigmoid, NMS - is FP32 anyway).
FP32_OPS: dict[str, str] = {
    "ReduceMean": "squeeze-excite global pooling sums H*W activations; FP16 accumulation loses digits at "
                  "large inputs (D7 at 1536 averages 2,304 values per channel in P7 and 147,456 at the stem)",
    "Exp": "box decoding: exp(th) overflows FP16 (max 65504) for regressions above ~11",
    "Softmax": "not in EfficientDet today; listed so a future head cannot silently drop to FP16",
}
# op type -> why AutoCast's range check must not keep it FP32 (it flags -inf and large values on
# random reference inputs): -inf is exact in FP16, and max pooling cannot overflow.
FP16_SAFE_OPS: dict[str, str] = {
    "Pad": "files exported before export/rewrite.py pad with -inf before max pooling: exact in FP16",
    "MaxPool": "a max of FP16 values is an FP16 value",
}


def reference_input(model: onnx.ModelProto, info: ModelInfo) -> dict[str, np.ndarray]:
    """AutoCast's reference run input: one generated scene (seed 2) through the runtime's own preprocessing, in the
    file's layout and dtype, repeated to a static batch. Without it AutoCast draws values in (-1, 1) in the input's
    dtype, which is out of range for a uint8 input (a Polygraphy ValueError) and far from 0-255 pixels."""
    from effdet.synthetic import render
    from runtime.letterbox import letterbox
    from runtime.preprocess import prepare_batch

    image = letterbox(render(2, 0).image, info.image_size, info.mean)[0]
    dims = model.graph.input[0].type.tensor_type.shape.dim
    batch = dims[0].dim_value if dims and dims[0].dim_value > 0 else 1
    return {model.graph.input[0].name: prepare_batch([image] * batch, info)}


def to_fp16(model: onnx.ModelProto, info: ModelInfo) -> tuple[onnx.ModelProto, list[str]]:
    """FP32 exported model -> (strongly typed FP16 model, names of body nodes left in FP32)."""
    autocast = lazy_import("modelopt.onnx.autocast", "'nvidia-modelopt[onnx]'")
    logging.getLogger("modelopt").setLevel(logging.WARNING)
    parts = split(model)
    with tempfile.TemporaryDirectory() as tmp:
        body_path, data_path = Path(tmp) / "body.onnx", Path(tmp) / "reference_input.npz"
        onnx.save(parts.body, str(body_path))
        np.savez(data_path, **reference_input(model, info))
        body = autocast.convert_to_mixed_precision(
            str(body_path), low_precision_type="fp16", op_types_to_exclude=list(FP32_OPS),
            op_types_to_include=list(FP16_SAFE_OPS), keep_io_types=True, calibration_data=str(data_path),
            providers=["cpu"])
    kept = _fp32_nodes(body)
    return join(parts, to_opset17(body), {"precision": "fp16", "fp32_ops": ",".join(FP32_OPS),
                                          "fp32_nodes": str(len(kept)), "min_tensorrt": MIN_TENSORRT}), kept


def _fp32_nodes(model: onnx.ModelProto) -> list[str]:
    """Body nodes whose first output is FP32 after conversion (excluding the Casts AutoCast inserted)."""
    types = {v.name: v.type.tensor_type.elem_type for v in
             list(model.graph.value_info) + list(model.graph.output) + list(model.graph.input)}
    return [n.name for n in model.graph.node if n.op_type != "Cast" and n.output
            and types.get(n.output[0]) == onnx.TensorProto.FLOAT]
