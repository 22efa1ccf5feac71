"""Reading and writing ONNX files with the project's error contract (one DeployError line naming the
file) and atomic writes. onnx only - no torch - so engine build and Triton tools can use it anywhere."""
from __future__ import annotations

from pathlib import Path

import onnx

from runtime.atomic import write_atomic
from runtime.errors import DeployError, require_file


def read_onnx(path: Path, weights: bool = True) -> onnx.ModelProto:
    """Load an ONNX file (without external weight data when weights=False)."""
    require_file(path, "an ONNX file")
    try:
        proto = onnx.load(str(path), load_external_data=weights)
    except Exception as e:  # protobuf DecodeError and friends
        raise DeployError(f"{path}: not a readable ONNX file ({str(e).splitlines()[0][:160]})") from None
    if not proto.graph.node or not proto.graph.input:   # an empty file parses as an empty ModelProto
        raise DeployError(f"{path}: not an ONNX model (no graph{' nodes' if proto.graph.input else ' inputs'})")
    return proto


def metadata_of(proto: onnx.ModelProto) -> dict[str, str]:
    """The file's metadata_props as a dict."""
    return {p.key: p.value for p in proto.metadata_props}


def write_onnx(proto: onnx.ModelProto, path: Path) -> None:
    """Serialize and write atomically, so a failure never leaves a partial file."""
    write_atomic(path, proto.SerializeToString())
