"""Small graph rewrites on the exported network, each exact (same outputs, tested by the parity tests).

`fold_pads_into_pools`: TF "SAME" max pooling is traced as Pad(-inf) -> MaxPool. ONNX MaxPool's own pads
ignore padded positions, which is the same as padding with -inf, so the Pad node can go: 14 fewer nodes
in D0, and no -inf constant left for FP16 converters to trip over.
"""
from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import helper, numpy_helper


def consumers_of(graph: onnx.GraphProto) -> dict[str, list[onnx.NodeProto]]:
    """tensor name -> the nodes that read it."""
    out: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            out.setdefault(name, []).append(node)
    return out


def _pool_pads(pad: onnx.NodeProto, inits: dict[str, np.ndarray]) -> list[int] | None:
    """[h_begin, w_begin, h_end, w_end] if `pad` is a constant -inf spatial pad of an NCHW tensor, else None."""
    mode = next((a.s for a in pad.attribute if a.name == "mode"), b"constant")
    if mode != b"constant" or len(pad.input) < 3 or pad.input[1] not in inits or pad.input[2] not in inits:
        return None
    if len(pad.input) > 3 and pad.input[3]:     # Pad-18 `axes`: the pads would not be NCHW begin/end order
        return None
    pads, value = inits[pad.input[1]].astype(np.int64).tolist(), inits[pad.input[2]]
    if len(pads) != 8 or value.size != 1 or not (math.isinf(float(value)) and float(value) < 0):
        return None
    if any(pads[i] for i in (0, 1, 4, 5)) or min(pads) < 0:
        return None
    return [pads[2], pads[3], pads[6], pads[7]]


def fold_pads_into_pools(model: onnx.ModelProto) -> int:
    """Merge Pad(-inf) -> MaxPool pairs into MaxPool pads, in place; returns how many were folded."""
    graph = model.graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    consumers = consumers_of(graph)
    outputs = {o.name for o in graph.output}
    folded = []
    for pad in graph.node:
        if pad.op_type != "Pad" or pad.output[0] in outputs:
            continue
        users = consumers.get(pad.output[0], [])
        pads = _pool_pads(pad, inits)
        if pads is None or len(users) != 1 or users[0].op_type != "MaxPool":
            continue
        pool = users[0]
        attrs = {a.name: a for a in pool.attribute}
        if "auto_pad" in attrs and attrs["auto_pad"].s not in (b"", b"NOTSET"):
            continue
        if "ceil_mode" in attrs and attrs["ceil_mode"].i:   # which windows start in padding would change
            continue
        old = list(attrs["pads"].ints) if "pads" in attrs else [0, 0, 0, 0]
        merged = [a + b for a, b in zip(old, pads)]
        kernel = list(attrs["kernel_shape"].ints)
        if any(merged[i] >= kernel[i % 2] for i in range(4)):   # ONNX requires pads < kernel
            continue
        for name in ("pads", "auto_pad"):
            if name in attrs:
                pool.attribute.remove(attrs[name])
        pool.attribute.append(helper.make_attribute("pads", merged))
        pool.input[0] = pad.input[0]
        folded.append(pad)
    for pad in folded:
        graph.node.remove(pad)
    used = {name for node in graph.node for name in node.input}
    for init in [i for i in graph.initializer if i.name not in used]:
        graph.initializer.remove(init)
    return len(folded)
