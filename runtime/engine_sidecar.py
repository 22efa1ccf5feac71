"""The JSON sidecar written next to every engine (`model.engine` -> `model.engine.json`).

A TensorRT plan only loads on the TensorRT version and GPU it was built for; loading it elsewhere
crashes or fails with an opaque message. The sidecar records what the engine needs, so the runtime can
refuse with one clear line naming both sides, and detect truncated or replaced files by size/hash.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Mapping

from runtime.atomic import write_atomic
from runtime.errors import DeployError
from runtime.trt_compat import loads_engine


def sidecar_path(engine: str | Path) -> Path:
    return Path(str(engine) + ".json")


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_sidecar(engine: Path, info: dict[str, Any]) -> Path:
    """Write ENGINE.json atomically with the engine's size and sha256 added."""
    data = {**info, "engine_bytes": engine.stat().st_size, "engine_sha256": file_digest(engine)}
    target = sidecar_path(engine)
    return write_atomic(target, json.dumps(data, indent=2))


# What every reader of a sidecar relies on: the version to check, the contract of the ONNX the engine came
# from (the runtime's preprocessing, classes and thresholds), and the size write_sidecar adds.
REQUIRED_KEYS = ("tensorrt_version", "onnx_metadata", "engine_bytes")


def read_sidecar(engine: Path) -> dict[str, Any]:
    """ENGINE.json, refused with one line when missing, not a JSON object or lacking REQUIRED_KEYS."""
    path = sidecar_path(engine)
    if not path.is_file():
        raise DeployError(f"{engine}: no {path.name} beside it (the engine's input contract); "
                          "build engines with `effdet-deploy build`")
    try:
        data: object = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise DeployError(f"{path}: unreadable engine sidecar ({e})") from None
    if not isinstance(data, dict):
        raise DeployError(f"{path}: not an engine sidecar (a JSON {type(data).__name__}, not an object)")
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise DeployError(f"{path}: lacks {', '.join(repr(k) for k in missing)}: not written by "
                          "`effdet-deploy build`; rebuild the engine")
    if not isinstance(data["onnx_metadata"], dict) or type(data["engine_bytes"]) is not int:
        raise DeployError(f"{path}: onnx_metadata is not an object or engine_bytes not an integer; rebuild the engine")
    return data


def check_unchanged(engine: Path, sidecar: Mapping[str, object], digest: bool = False) -> None:
    """Refuse an engine whose size (and, with digest, sha256) differs from what its build recorded."""
    size = engine.stat().st_size
    if size != sidecar["engine_bytes"]:
        raise DeployError(f"{engine}: {size} bytes but built as {sidecar['engine_bytes']}: truncated or replaced")
    if digest and "engine_sha256" in sidecar and file_digest(engine) != sidecar["engine_sha256"]:
        raise DeployError(f"{engine}: its sha256 differs from the one recorded at build time: replaced or corrupted")


def check_engine(engine: Path, sidecar: Mapping[str, object], trt_version: str, gpu_name: str,
                 compute_capability: str) -> None:
    """Refuse an engine that cannot load here: truncated/replaced, other TensorRT, other GPU.

    The GPU must match exactly: `effdet-deploy build` has no hardware-compatibility option, so no sidecar
    claims one (a hand-written `hardware_compatible` key is ignored rather than trusted).
    """
    check_unchanged(engine, sidecar)
    built = str(sidecar.get("tensorrt_version", "?"))
    compatible = bool(sidecar.get("version_compatible"))
    if built == "?" or not loads_engine(built, trt_version, compatible):
        rule = ("version-compatible engines load on the same or a later TensorRT release (patch included) of "
                "the same major, and across majors only 8 -> 9, 8 -> 10, 9 -> 10 and 10 -> 11" if compatible
                else "or build with --version-compatible")
        raise DeployError(f"{engine}: built with TensorRT {built}, this is TensorRT {trt_version}; "
                          f"rebuild it here (effdet-deploy build) {rule}")
    built_cc = str(sidecar.get("compute_capability", "?"))
    if built_cc != compute_capability:
        raise DeployError(f"{engine}: built for {sidecar.get('gpu_name', '?')} (sm {built_cc}), this GPU is "
                          f"{gpu_name} (sm {compute_capability}); rebuild it on this GPU")
