"""The exclude file: node groups (and their node names) to keep out of INT8, written by
`compare --layers --suggest-exclude FILE` and read by `quantize --exclude @FILE`. JSON, versioned:
{"format": FORMAT, "version": VERSION, "model": ..., "groups": [...], "nodes": [...], "measured": {...}}.
"nodes" is what quantize uses: the analysed file's own exclusions plus every node of the suggested groups."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from runtime.atomic import write_atomic
from runtime.errors import DeployError

FORMAT, VERSION = "effdet-deploy-exclude", 1


def write_exclude_file(path: Path, model: str, groups: list[str], nodes: list[str], measured: dict[str, Any]) -> Path:
    data = {"format": FORMAT, "version": VERSION, "model": model, "groups": groups, "nodes": nodes,
            "measured": measured}
    return write_atomic(path, json.dumps(data, indent=1))


def read_exclude_file(path: Path) -> list[str]:
    """The node names of an exclude file; one-line DeployError naming the file for anything else."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise DeployError(f"{path}: exclude file not found") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise DeployError(f"{path}: not an exclude file ({type(e).__name__})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise DeployError(f"{path}: not an exclude file written by compare --suggest-exclude")
    if data.get("version") != VERSION:
        raise DeployError(f"{path}: exclude file version {data.get('version')}; this effdet-deploy reads {VERSION}")
    nodes = data.get("nodes")
    if not isinstance(nodes, list) or not all(isinstance(n, str) for n in nodes):
        raise DeployError(f"{path}: 'nodes' must be a list of node names")
    return nodes
