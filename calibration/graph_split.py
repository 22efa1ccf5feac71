"""Cut an exported file into the network body and the post-processing tail, and join them again.

Precision conversion and calibration act on the body only (DESIGN §5): the tail - head flattening,
box decoding, sigmoid and NMS (plugin or ONNX ops) - is carried over node for node, so FP32, FP16 and
INT8 files end in the identical FP32 tail, and ONNX Runtime-based tools (ModelOpt) never see the plugin.
Rule: a node belongs to the tail when no Conv can be reached from it; everything else is the body.
"""
from __future__ import annotations

from dataclasses import dataclass

import onnx
from onnx import helper

from export.onnx_io import metadata_of


@dataclass
class SplitGraph:
    body: onnx.ModelProto               # outputs: the tensors the tail reads (FP32 in every precision)
    tail_nodes: list[onnx.NodeProto]
    tail_initializers: list[onnx.TensorProto]
    outputs: list[onnx.ValueInfoProto]  # the original graph outputs
    source: onnx.ModelProto


def tail_node_names(model: onnx.ModelProto) -> set[str]:
    """Nodes from which no Conv is reachable (walking producer -> consumer)."""
    consumers: dict[str, list[int]] = {}
    for i, node in enumerate(model.graph.node):
        for name in node.input:
            consumers.setdefault(name, []).append(i)
    reaches_conv: dict[int, bool] = {}
    nodes = list(model.graph.node)
    for i in reversed(range(len(nodes))):   # exported graphs are topologically sorted
        node = nodes[i]
        reaches_conv[i] = any(nodes[j].op_type == "Conv" or reaches_conv.get(j, False)
                              for out in node.output for j in consumers.get(out, []))
    return {nodes[i].name for i in range(len(nodes)) if not reaches_conv[i] and nodes[i].op_type != "Conv"}


def split(model: onnx.ModelProto) -> SplitGraph:
    """Body (a valid model with the boundary tensors as outputs) + the tail to re-attach later."""
    for i, node in enumerate(model.graph.node):
        if not node.name:
            node.name = f"node_{i}_{node.op_type}"
    tail = tail_node_names(model)
    body_nodes = [n for n in model.graph.node if n.name not in tail]
    tail_nodes = [n for n in model.graph.node if n.name in tail]
    produced = {o for n in body_nodes for o in n.output} | {i.name for i in model.graph.input}
    boundary = list(dict.fromkeys(x for n in tail_nodes for x in n.input if x in produced))
    tail_inputs = {x for n in tail_nodes for x in n.input}
    body_inputs = {x for n in body_nodes for x in n.input}
    tail_inits = [t for t in model.graph.initializer if t.name in tail_inputs and t.name not in body_inputs]
    tail_init_names = {t.name for t in tail_inits}
    body_graph = helper.make_graph(body_nodes, model.graph.name + "_body", list(model.graph.input),
                                   [helper.make_tensor_value_info(b, onnx.TensorProto.FLOAT, None) for b in boundary],
                                   [t for t in model.graph.initializer if t.name not in tail_init_names])
    body = helper.make_model(body_graph, opset_imports=[o for o in model.opset_import if o.domain in ("", "ai.onnx")],
                             ir_version=model.ir_version)
    body = onnx.shape_inference.infer_shapes(body)
    return SplitGraph(body, tail_nodes, tail_inits, list(model.graph.output), model)


def join(parts: SplitGraph, body: onnx.ModelProto, metadata: dict[str, str]) -> onnx.ModelProto:
    """Converted body + the original tail and outputs + the source's metadata updated with `metadata`."""
    graph = body.graph
    graph.node.extend(parts.tail_nodes)
    graph.initializer.extend(parts.tail_initializers)
    del graph.output[:]
    graph.output.extend(parts.outputs)
    for opset in parts.source.opset_import:
        if opset.domain not in ("", "ai.onnx") and not any(o.domain == opset.domain for o in body.opset_import):
            body.opset_import.append(opset)
    meta = metadata_of(parts.source)
    meta.update(metadata)
    del body.metadata_props[:]
    for key, value in meta.items():
        body.metadata_props.add(key=key, value=value)
    return body
