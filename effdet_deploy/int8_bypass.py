"""An INT8 Q/DQ file with some nodes taken out of INT8, in memory: what `--suggest-exclude` measures for each
candidate set before `quantize --exclude @FILE` calibrates the real file.

For every input of a chosen node that a DequantizeLinear feeds: an activation (DQ of a Q of X) is read as X
itself; a weight (DQ of an INT8 initializer) becomes the FP32 reference file's weight of the same node, in the
DQ's output type (FP16 in the TensorRT >= 10.0 form, FP32 in the 8.6 form); a Conv's bias goes back to the
reference's (bias correction only fits quantized convs). Q/DQ nodes nothing reads any more are dropped. Other
consumers of the same Q/DQ keep it. An approximation of quantize's exclusion (which also re-runs calibration and
bias correction around the excluded nodes); the exclude file's round trip is measured on the real file.
"""
from __future__ import annotations

import onnx
from onnx import numpy_helper

QDQ = ("QuantizeLinear", "DequantizeLinear")


def without_int8(model: onnx.ModelProto, reference: onnx.ModelProto, nodes: set[str]) -> onnx.ModelProto:
    """A copy of `model` whose nodes named in `nodes` compute from unquantized inputs and FP32-file weights."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    producer = {o: n for n in out.graph.node for o in n.output}
    inits = {t.name: t for t in out.graph.initializer}
    ref_nodes = {n.name: n for n in reference.graph.node}
    ref_inits = {t.name: t for t in reference.graph.initializer}
    for node in out.graph.node:
        if node.name not in nodes or node.name not in ref_nodes:
            continue
        ref = ref_nodes[node.name]
        for i, name in enumerate(node.input):
            dq = producer.get(name)
            if dq is None or dq.op_type != "DequantizeLinear":
                continue
            q = producer.get(dq.input[0])
            if q is not None and q.op_type == "QuantizeLinear":
                node.input[i] = q.input[0]
            elif dq.input[0] in inits and i < len(ref.input) and ref.input[i] in ref_inits:
                node.input[i] = _reference_weight(out, ref_inits[ref.input[i]], inits[dq.input[1]].data_type,
                                                  f"{node.name}_input{i}_unquantized")
        if node.op_type == "Conv" and len(node.input) > 2 and node.input[2] in inits and len(ref.input) > 2 \
                and ref.input[2] in ref_inits:
            node.input[2] = _reference_weight(out, ref_inits[ref.input[2]], inits[node.input[2]].data_type,
                                              f"{node.name}_bias_unquantized")
    _drop_unread(out)
    return out


def _reference_weight(model: onnx.ModelProto, weight: onnx.TensorProto, data_type: int, name: str) -> str:
    """Add the reference's weight in `data_type` (FP16 / FP32) under `name`; returns the name."""
    dtype = onnx.helper.tensor_dtype_to_np_dtype(data_type)
    model.graph.initializer.append(numpy_helper.from_array(numpy_helper.to_array(weight).astype(dtype), name))
    return name


def _drop_unread(model: onnx.ModelProto) -> None:
    """Remove Q/DQ nodes whose outputs nothing reads (repeatedly), and initializers nothing reads."""
    outputs = {o.name for o in model.graph.output}
    while True:
        read = {x for n in model.graph.node for x in n.input} | outputs
        dead = [n for n in model.graph.node if n.op_type in QDQ and not any(o in read for o in n.output)]
        if not dead:
            break
        for n in dead:
            model.graph.node.remove(n)
    read = {x for n in model.graph.node for x in n.input}
    keep = [t for t in model.graph.initializer if t.name in read]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)
