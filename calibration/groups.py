"""Node groups of the network body (backbone stage, BiFPN cell, head tower, head output conv): the units the
default exclusion names, `--exclude auto` measures and `compare` reports. Names come from the PyTorch modules."""
from __future__ import annotations

import re

import onnx

# (pattern on the exported node name, group); first match wins.
GROUP_RULES: list[tuple[str, str]] = [
    (r"^/model/backbone/(conv_stem|bn1)/", "backbone/stem"),
    (r"^/model/backbone/(blocks\.\d+)/", r"backbone/\1"),
    (r"^/model/fpn/(cell\.\d+)/", r"fpn/\1"),
    (r"^/model/fpn/", "fpn/resample"),
    (r"^/model/(class_net|box_net)/predict/", r"\1/predict"),
    (r"^/model/(class_net|box_net)/", r"\1/tower"),
]


def first_rule(rules: list[tuple[str, str]], text: str, default: str) -> str:
    """The template of the first (pattern, template) rule that matches `text`, expanded; else `default`."""
    for pattern, template in rules:
        m = re.match(pattern, text)
        if m:
            return m.expand(template)
    return default


def node_group(name: str) -> str:
    return first_rule(GROUP_RULES, name, "other")


def groups_of(model: onnx.ModelProto) -> dict[str, list[str]]:
    """group -> node names, in graph order."""
    out: dict[str, list[str]] = {}
    for node in model.graph.node:
        out.setdefault(node_group(node.name), []).append(node.name)
    return out
