"""Reading ONNX nodes the way every lint module names them: one label per node, attributes with defaults."""
from __future__ import annotations

import onnx


def node_label(node: onnx.NodeProto) -> str:
    """How a finding names a node: "node 'conv_3' (Conv)"."""
    return f"node '{node.name or '?'}' ({node.op_type})"


def attr(node: onnx.NodeProto, name: str, default: object) -> object:
    """An attribute's value (strings decoded), or `default` when the node does not set it."""
    for a in node.attribute:
        if a.name == name:
            value = onnx.helper.get_attribute_value(a)
            return value.decode() if isinstance(value, bytes) else value
    return default
