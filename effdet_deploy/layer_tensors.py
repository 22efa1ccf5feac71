"""Which tensors `compare --layers` compares, and where each lives in the target file.

The reference is the FP32 file's network body (calibration/graph_split.py: everything up to the tensors the
post-processing tail reads), in topological order. A target (FP16, INT8, another FP32) carries the same tensor
under the same name where its node is the same op; precision conversion and Q/DQ insertion add tensors around it
(Casts, "<name>_pre_cast" outputs before a Cast back, X -> Q -> DQ -> consumer), which are mapped back to the FP32
tensor they carry: the name itself where present, else the tensor a chain of Cast / Identity / Q / DQ leads
from or to. The FP32 tensor before its Q is what its producer computed; the quantization error of X shows in
its consumer's output, so it is charged to the consumer node, where the INT8 math happens.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import onnx

from calibration.graph_split import split
from calibration.groups import node_group

CARRIERS = ("Cast", "Identity", "QuantizeLinear", "DequantizeLinear")   # same value, other type or a Q/DQ copy
SKIPPED_OPS = ("Constant", "Shape")


@dataclass(frozen=True)
class LayerTensor:
    """One compared tensor: its FP32 name, producing node, op, node group, depth (graph order) and input tensors."""

    name: str
    node: str
    op: str
    group: str
    depth: int
    inputs: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"tensor": self.name, "node": self.node, "op": self.op, "group": self.group, "depth": self.depth,
                "inputs": list(self.inputs)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> LayerTensor:
        return cls(d["tensor"], d["node"], d["op"], d["group"], int(d["depth"]), tuple(d["inputs"]))


def body_of(model: onnx.ModelProto) -> onnx.ModelProto:
    """The network body of an exported (or quantized) file: no post-processing tail, no plugin node."""
    clone = onnx.ModelProto()
    clone.CopyFrom(model)
    return split(clone).body


def part_rank(group: str) -> int:
    """Where a node group sits in the network's data flow: input, stem, stages, BiFPN cells, heads; 0 for groups
    that take the rank of their inputs (the BiFPN's resampling, anything unnamed)."""
    m = re.match(r"^(backbone/stem|backbone/blocks\.(\d+)|fpn/cell\.(\d+)|class_net/|box_net/)", group)
    if not m:
        return 0
    if m.group(2) is not None:
        return 10 + int(m.group(2))
    if m.group(3) is not None:
        return 100 + int(m.group(3))
    return 1 if m.group(1) == "backbone/stem" else 1000


def reference_tensors(body: onnx.ModelProto) -> list[LayerTensor]:
    """Every activation the FP32 body computes, in a topological order that follows the network's parts: each node
    ranked by its part (part_rank, never below its inputs' rank), then by graph position. The exporter's graph
    order runs BiFPN resampling in the middle of the backbone; this order keeps backbone, BiFPN and heads apart."""
    produced: set[str] = {i.name for i in body.graph.input}
    rank: dict[str, int] = {}
    found: list[tuple[int, int, str, onnx.NodeProto, tuple[str, ...]]] = []
    for index, node in enumerate(body.graph.node):
        inputs = tuple(x for x in node.input if x in produced)
        r = max([part_rank(node_group(node.name))] + [rank.get(x, 0) for x in inputs])
        for o in (o for o in node.output if o):
            rank[o] = r
            if node.op_type not in SKIPPED_OPS:
                found.append((r, index, o, node, inputs))
        produced.update(o for o in node.output if o)
    found.sort(key=lambda f: (f[0], f[1]))
    return [LayerTensor(o, node.name, node.op_type, node_group(node.name), depth, inputs)
            for depth, (_, _, o, node, inputs) in enumerate(found)]


def carried_by(model: onnx.ModelProto) -> dict[str, str]:
    """target tensor -> the tensor it carries (its source through Cast / Identity / Q / DQ chains)."""
    step = {n.output[0]: n.input[0] for n in model.graph.node if n.op_type in CARRIERS and n.output}
    root: dict[str, str] = {}
    for name in step:
        seen, cur = [name], step[name]
        while cur in step and cur not in seen:
            seen.append(cur)
            cur = step[cur]
        root[name] = cur
    return root


def target_names(reference: list[LayerTensor], target: onnx.ModelProto) -> dict[str, str]:
    """FP32 tensor -> the target tensor carrying it (FP32 tensors the target does not compute are left out)."""
    carriers = {n.output[0] for n in target.graph.node if n.op_type in CARRIERS and n.output}
    computed = {o for n in target.graph.node if n.op_type not in CARRIERS for o in n.output if o}
    roots = carried_by(target)
    by_root: dict[str, str] = {}
    for tensor, source in roots.items():
        by_root.setdefault(source, tensor)
    found: dict[str, str] = {}
    for t in reference:
        if t.name in computed:
            found[t.name] = t.name
        elif t.name in carriers and roots[t.name] in computed:
            found[t.name] = roots[t.name]          # e.g. conv -> X_pre_cast -> Cast -> X: X's producer computed it
        elif t.name in by_root:
            found[t.name] = by_root[t.name]
    return found


def names_in(reference: list[LayerTensor], available: set[str]) -> dict[str, str]:
    """FP32 tensor -> its name among `available` (an engine's outputs): the same name, else '<name>_pre_cast'
    (the FP16 conv output an FP16/INT8 file casts back to the FP32 name)."""
    found = {}
    for t in reference:
        for name in (t.name, f"{t.name}_pre_cast"):
            if name in available:
                found[t.name] = name
                break
    return found
