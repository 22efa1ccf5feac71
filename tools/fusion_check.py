"""Whether an INT8 engine really runs INT8: its layers as IEngineInspector reports them (JSON of an engine built
with detailed profiling verbosity) against the quantized convolutions of the ONNX file it was built from.

How the JSON shows it (TensorRT's trt-engine-explorer examples, v10.13.0 tools/experimental/trt-engine-explorer:
pytorch/resnet/A100/qat, tests/inputs/mobilenet.qat; Polygraphy backend/trt/util.py reads the same keys):
- a layer: {"Name", "LayerType", "ParameterType", "Origin", "Inputs"/"Outputs": [{"Name", "Dimensions",
  "Format/Datatype"}], ...}; fused layers' names join the ONNX node names with " + "
  ("conv1.weight + QuantizeLinear_7 + Conv_9"); without detailed verbosity each layer is only its name (a string);
- an INT8 convolution: a Convolution layer (LayerType CaskConvolution, CudaDepthwiseConvolution, ConvActPool, ...)
  whose input's Format/Datatype names Int8 ("Thirty-two wide channel vectorized row major Int8 format");
- a Q/DQ TensorRT could not fuse into a neighbour: a layer of its own, LayerType "Reformat", Origin "QDQ", named
  after the ONNX node. A standalone Quantize (float in, Int8 out) is how a tensor enters an INT8 region after a
  layer that cannot write INT8 (10 of them in the resnet-qat example, whose 21 convolutions all run INT8): listed,
  not a failure. A standalone Dequantize (Int8 in, float out) means float math reads dequantized data: a failure
  (trt-engine-explorer trex/lint.py QDQLinter: "Unfused Quantize/Dequantize nodes are wasteful"), as is a
  standalone Cast that the file placed next to a Q/DQ node.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from export.qdq_graph import FileQDQ


@dataclass(frozen=True)
class EngineLayer:
    name: str
    kind: str                       # LayerType: the implementation (CaskConvolution, Reformat, ...)
    parameter: str                  # ParameterType: the layer kind (Convolution, Reformat, ...); "" if absent
    origin: str                     # Origin: why a reformat exists (QDQ, REFORMAT); "" if absent
    inputs: tuple[str, ...]         # Format/Datatype of each input
    outputs: tuple[str, ...]


def engine_layers(layer_json: str) -> list[EngineLayer]:
    """The detailed layers of IEngineInspector's JSON; [] when it is no JSON or carries names only."""
    try:
        data = json.loads(layer_json) if layer_json else {}
    except ValueError:
        return []
    raw = data.get("Layers", []) if isinstance(data, dict) else []
    return [_layer(item) for item in raw if isinstance(item, dict)]


def _layer(item: dict[str, object]) -> EngineLayer:
    def formats(key: str) -> tuple[str, ...]:
        tensors = item.get(key)
        return tuple(str(t.get("Format/Datatype", "")) for t in tensors if isinstance(t, dict)) \
            if isinstance(tensors, list) else ()
    return EngineLayer(str(item.get("Name", "")), str(item.get("LayerType", "")), str(item.get("ParameterType", "")),
                       str(item.get("Origin", "")), formats("Inputs"), formats("Outputs"))


def is_conv(layer: EngineLayer) -> bool:
    return "conv" in f"{layer.kind} {layer.parameter}".lower()


def reads_int8(layer: EngineLayer) -> bool:
    return bool(layer.inputs) and "int8" in layer.inputs[0].lower()


def name_parts(name: str) -> list[str]:
    """The node names a (fused) engine layer is made of."""
    return [part.strip() for part in name.split(" + ") if part.strip()]


def standalone_kind(layer: EngineLayer, qdq: FileQDQ) -> str | None:
    """'Quantize', 'Dequantize' or 'Cast' for a layer that is nothing but such nodes, else None: by the file's
    node names, else by Origin QDQ and the Int8 side of its formats, else by a LayerType/ParameterType 'Cast'."""
    parts = name_parts(layer.name)
    ours = qdq.quantize | qdq.dequantize | qdq.casts
    if parts and all(p in ours for p in parts):
        if any(p in qdq.dequantize for p in parts):
            return "Dequantize"
        return "Cast" if any(p in qdq.casts for p in parts) else "Quantize"
    int8_in = reads_int8(layer)
    int8_out = bool(layer.outputs) and "int8" in layer.outputs[0].lower()
    if layer.origin.upper() == "QDQ" and int8_in != int8_out:
        return "Dequantize" if int8_in else "Quantize"
    return "Cast" if "cast" in f"{layer.kind} {layer.parameter}".lower() else None


@dataclass(frozen=True)
class Fusion:
    """An INT8 engine's fusion verdict: truthy when it passes, with the numbers and names inside."""
    int8_convs: int                 # the file's quantized convolutions found running INT8
    quantized_convs: int            # the file's quantized convolutions
    convs: int                      # convolution layers in the engine
    standalone: tuple[tuple[str, str], ...]   # (kind, layer name) of every standalone Q/DQ/Cast layer
    failures: tuple[str, ...]

    def __bool__(self) -> bool:
        return not self.failures


def int8_conv_count(layers: list[EngineLayer], qdq: FileQDQ) -> int:
    """The file's quantized convolutions that run INT8, by name where the engine's convolution layers carry the
    file's Conv names (a horizontally fused layer then counts every Conv in it), else INT8 convolution layers."""
    convs = [layer for layer in layers if is_conv(layer)]
    int8 = [layer for layer in convs if reads_int8(layer)]
    if not any(p in qdq.convs for layer in convs for p in name_parts(layer.name)):
        return len(int8)
    wanted = set(qdq.quantized_convs)
    return len({p for layer in int8 for p in name_parts(layer.name) if p in wanted})


def fusion(layers: list[EngineLayer], qdq: FileQDQ) -> Fusion:
    """INT8 convolutions = the file's quantized convolutions; no standalone Dequantize; no standalone Cast the
    file placed next to a Q/DQ node. Standalone Quantize layers are listed only (see the module docstring)."""
    counted = int8_conv_count(layers, qdq)
    standalone = tuple((kind, layer.name) for layer in layers if (kind := standalone_kind(layer, qdq)))
    failures = []
    if counted != len(qdq.quantized_convs):
        failures.append(f"{counted} of the file's {len(qdq.quantized_convs)} quantized convolutions run INT8 "
                        "(the others did not fuse their Q/DQ)")
    dq = [name for kind, name in standalone if kind == "Dequantize"]
    cast = [name for kind, name in standalone if kind == "Cast" and set(name_parts(name)) & qdq.qdq_casts]
    for label, names in (("Dequantize layer(s) not fused into their consumer", dq),
                         ("Cast layer(s) next to a Q/DQ", cast)):
        if names:
            failures.append(f"{len(names)} standalone {label}: {', '.join(names[:5])}"
                            + (f" (+{len(names) - 5} more)" if len(names) > 5 else ""))
    return Fusion(counted, len(qdq.quantized_convs), sum(map(is_conv, layers)), standalone, tuple(failures))
