"""Intermediate tensors of a TensorRT network marked as network outputs at build time, so that `compare --layers`
can read them from the engine: Polygraphy's `--onnx-outputs mark all` / `mark_outputs` (tools/Polygraphy/polygraphy/
backend/trt/util.py mark_layerwise and mark_outputs; INetworkDefinition.mark_output, TensorRT 8.6-11.x Python API).

As Polygraphy, tensors of SHAPE and CONSTANT layers are never marked; only the tensors named are (the FP32 file's
tensors and the '<name>_pre_cast' outputs of an FP16/INT8 file, as effdet_deploy/layer_tensors.py maps them), so a
Q layer's INT8 output is never an engine output. Marking keeps TensorRT from fusing across a marked tensor: a
layer-wise engine shows where precision is lost, not the fused engine's speed (Polygraphy's documented caveat).
Our networks have no loops, whose inner tensors cannot be outputs (Polygraphy skips them).
"""
from __future__ import annotations

from typing import Collection

import tensorrt as trt

MARK_ALL = "mark all"     # BuildSettings.mark_outputs = (MARK_ALL,): every tensor of every marked layer type


def markable(network: trt.INetworkDefinition) -> list[trt.ITensor]:
    """Every layer output that may become a network output (not SHAPE / CONSTANT, not already an output)."""
    excluded = (trt.LayerType.SHAPE, trt.LayerType.CONSTANT)
    found: list[trt.ITensor] = []
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if layer.type in excluded:
            continue
        found.extend(t for t in (layer.get_output(j) for j in range(layer.num_outputs)) if not t.is_network_output)
    return found


def mark_outputs(network: trt.INetworkDefinition, names: Collection[str]) -> int:
    """Mark the tensors named (all markable ones for (MARK_ALL,)); returns how many were marked."""
    every = tuple(names) == (MARK_ALL,)
    chosen = [t for t in markable(network) if every or t.name in names]
    for tensor in chosen:
        network.mark_output(tensor)
    return len(chosen)
