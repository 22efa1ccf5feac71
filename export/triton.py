"""A Triton Inference Server model repository for an exported ONNX file or a TensorRT engine.

`REPO/NAME/config.pbtxt` + `REPO/NAME/1/model.{onnx,plan}`; inputs/outputs from the file's metadata.
Beyond one GPU, users scale by running Triton replicas (instance_group per GPU, many servers behind a
load balancer); the repository is the unit they deploy.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from runtime.atomic import write_atomic
from runtime.errors import DeployError
from runtime.model_info import ModelInfo

PLATFORMS = {".onnx": ("onnxruntime_onnx", "model.onnx"), ".engine": ("tensorrt_plan", "model.plan"),
             ".plan": ("tensorrt_plan", "model.plan")}


@dataclass(frozen=True)
class TritonSettings:
    model: Path
    output: Path
    name: str | None = None
    max_batch_size: int | None = None        # default: the file's maximum batch (0 = no batching)
    dynamic_batching: bool = True
    instances: int = 1
    kind: str = "KIND_GPU"                   # KIND_GPU | KIND_CPU
    max_queue_delay_us: int = 100


def file_info(path: Path) -> tuple[ModelInfo, bool]:
    """(ModelInfo, has the EfficientNMS plugin) from an ONNX file's metadata or an engine's sidecar."""
    if not path.is_file():
        raise DeployError(f"{path}: file not found")
    if path.suffix == ".onnx":
        from export.onnx_io import metadata_of, read_onnx

        proto = read_onnx(path, weights=False)
        return (ModelInfo.from_metadata(metadata_of(proto), str(path)),
                any(n.op_type == "EfficientNMS_TRT" for n in proto.graph.node))
    from runtime.engine_sidecar import check_unchanged, read_sidecar

    sidecar = read_sidecar(path)
    check_unchanged(path, sidecar, digest=True)          # never package a truncated or replaced engine
    return ModelInfo.from_metadata(sidecar["onnx_metadata"], str(path)), False


def _tensor(name: str, dtype: str, dims: list[int]) -> str:
    return f'  {{\n    name: "{name}"\n    data_type: {dtype}\n    dims: [ {", ".join(map(str, dims))} ]\n  }}'


def config_text(s: TritonSettings, info: ModelInfo, platform: str) -> str:
    """config.pbtxt for the file. Batch dims are left out when Triton batches (max_batch_size > 0)."""
    lo, hi = info.batch
    max_batch = hi if s.max_batch_size is None else s.max_batch_size
    if max_batch > hi or (max_batch > 0 and lo > 1):
        raise DeployError(f"{s.model}: takes batch {lo}..{hi}; --max-batch-size {max_batch} does not fit")
    batch_dims = [] if max_batch > 0 else [lo]
    h, w = info.image_size
    image = [3, h, w] if info.input_layout == "nchw" else [h, w, 3]
    dtype = "TYPE_UINT8" if info.input_dtype == "uint8" else "TYPE_FP32"
    k = info.max_detections
    if info.nms == "none":
        n = int(info.extra.get("num_anchors", "-1"))
        outputs = [_tensor("boxes", "TYPE_FP32", batch_dims + [n, 4]),
                   _tensor("scores", "TYPE_FP32", batch_dims + [n, info.num_classes])]
    else:
        outputs = [_tensor("num_detections", "TYPE_INT32", batch_dims + [1]),
                   _tensor("detection_boxes", "TYPE_FP32", batch_dims + [k, 4]),
                   _tensor("detection_scores", "TYPE_FP32", batch_dims + [k]),
                   _tensor("detection_classes", "TYPE_INT32", batch_dims + [k])]
    lines = [f'name: "{s.name or s.model.stem.replace(".", "_")}"', f'platform: "{platform}"',
             f"max_batch_size: {max_batch}", "input [", _tensor("images", dtype, batch_dims + image), "]",
             "output [", ",\n".join(outputs), "]"]
    if s.dynamic_batching and max_batch > 0:
        lines += ["dynamic_batching {", f"  max_queue_delay_microseconds: {s.max_queue_delay_us}", "}"]
    lines += ["instance_group [", f"  {{\n    count: {s.instances}\n    kind: {s.kind}\n  }}", "]"]
    lines += [f'parameters {{\n  key: "efficientdet_deploy"\n  value {{ string_value: "{_escape(_summary(info))}" }}\n}}']
    return "\n".join(lines) + "\n"


def _summary(info: ModelInfo) -> str:
    return json.dumps({"model": info.model, "precision": info.precision, "nms": info.nms, "mean": info.mean,
                       "std": info.std, "class_names": list(info.class_names)})


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def validate_config(text: str, source: str) -> object:
    """Parse with Triton's own ModelConfig schema (tritonclient); DeployError on any schema error."""
    from runtime.lazy import lazy_import

    pb = lazy_import("tritonclient.grpc.model_config_pb2", "'tritonclient[grpc]'")
    text_format = lazy_import("google.protobuf.text_format", "protobuf")
    try:
        return text_format.Parse(text, pb.ModelConfig())
    except text_format.ParseError as e:
        raise DeployError(f"{source}: not a valid Triton model config ({e})") from None


def check_settings(s: TritonSettings) -> None:
    """A model name is one folder inside the repository (Triton's names: letters, digits, _ . -), counts >= 1."""
    if s.name is not None and not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", s.name):
        raise DeployError(f"--name '{s.name}' must be one folder name (letters, digits, _ . -), not a path")
    if s.instances < 1:
        raise DeployError(f"--instances must be at least 1, got {s.instances}")
    if s.max_batch_size is not None and s.max_batch_size < 0:
        raise DeployError(f"--max-batch-size must be >= 0 (0: no batching), got {s.max_batch_size}")


def triton_repository(s: TritonSettings) -> Path:
    """Write REPO/NAME/{config.pbtxt, 1/model.*}; returns the model folder."""
    check_settings(s)
    if s.model.suffix not in PLATFORMS:
        raise DeployError(f"{s.model}: Triton repositories take .onnx or .engine/.plan files")
    info, has_plugin = file_info(s.model)
    platform, filename = PLATFORMS[s.model.suffix]
    if has_plugin and platform == "onnxruntime_onnx":
        raise DeployError(f"{s.model}: Triton's ONNX Runtime backend cannot run EfficientNMS_TRT; export with "
                          "--nms onnx for it, or build an engine (tensorrt_plan)")
    text = config_text(s, info, platform)
    validate_config(text, str(s.model))
    folder = s.output / (s.name or s.model.stem.replace(".", "_"))
    (folder / "1").mkdir(parents=True, exist_ok=True)
    write_atomic(folder / "1" / filename, s.model.read_bytes())
    write_atomic(folder / "config.pbtxt", text)
    return folder
