"""A Triton model repository that serves *encoded images in, detections out* (python backend over our runtime),
beside the native config for raw-tensor clients and, where a native backend can run the file, an ensemble
(python pre-processing -> native model -> python post-processing). Every config is parsed with Triton's schema
before anything is written. Layout for model name N:

  N/           python backend: IMAGE (UINT8 [-1], one encoded file per row, ragged batch) -> detections
  N_native/    tensorrt_plan / onnxruntime_onnx over the file (export/triton.py), raw tensors
  N_pre/ N_post/ N_ensemble/   the same contract as N through the native model (only with N_native)
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

from export.triton import PLATFORMS, TritonSettings, file_info, triton_repository, validate_config
from runtime.atomic import write_atomic
from runtime.errors import DeployError
from runtime.model_info import ModelInfo
from runtime.served import INPUT, MAX_BYTES, MAX_PIXELS
from runtime.thresholds import DEFAULT_SCORE_THRESHOLD

SOURCES = Path(__file__).resolve().parents[1] / "runtime" / "triton_models"
KINDS = {"cpu": "KIND_CPU", "gpu": "KIND_GPU"}


@dataclass(frozen=True)
class ServeSettings:
    """What `serve` writes. kind None: KIND_GPU for engines, KIND_CPU for ONNX files."""

    model: Path
    output: Path
    name: str | None = None
    max_batch_size: int | None = None          # default: the file's maximum batch
    max_queue_delay_us: int = 2000
    instances: int = 1
    kind: str | None = None                    # "cpu" | "gpu"
    score_threshold: float | None = DEFAULT_SCORE_THRESHOLD
    max_bytes: int = MAX_BYTES
    max_pixels: int = MAX_PIXELS


@dataclass(frozen=True)
class ServedRepository:
    root: Path
    detector: str                              # images in, detections out (python backend)
    native: str | None                         # raw tensors (native backend), None where no backend can run it
    ensemble: str | None
    note: str = ""                             # why there is no native model / ensemble


def model_name(s: ServeSettings) -> str:
    return s.name or s.model.stem.replace(".", "_")


def io_line(name: str, dtype: str, dims: list[int], extra: str = "") -> str:
    return f'  {{ name: "{name}" data_type: {dtype} dims: [ {", ".join(map(str, dims))} ]{extra} }}'


def param_lines(values: dict[str, str]) -> list[str]:
    return [f'parameters {{ key: "{k}" value {{ string_value: {json.dumps(v, ensure_ascii=False)} }} }}' for k, v in values.items()]


def detection_outputs(k: int, labels: bool = False) -> list[str]:
    label = ' label_filename: "labels.txt"' if labels else ""
    return [io_line("num_detections", "TYPE_INT32", [1]), io_line("detection_boxes", "TYPE_FP32", [k, 4]),
            io_line("detection_scores", "TYPE_FP32", [k]), io_line("detection_classes", "TYPE_INT32", [k], label)]


def python_config(name: str, max_batch: int, inputs: list[str], outputs: list[str], s: ServeSettings,
                    kind: str, params: dict[str, str]) -> str:
    lines = [f'name: "{name}"', 'backend: "python"', f"max_batch_size: {max_batch}",
             "input [", ",\n".join(inputs), "]", "output [", ",\n".join(outputs), "]",
             f"dynamic_batching {{ max_queue_delay_microseconds: {s.max_queue_delay_us} }}",
             f"instance_group [ {{ count: {s.instances} kind: {kind} }} ]"]
    return "\n".join(lines + param_lines(params)) + "\n"


def common_params(s: ServeSettings, info: ModelInfo) -> dict[str, str]:
    return {"metadata": json.dumps(info.extra), "class_names": json.dumps(list(info.class_names)),
            "score_threshold": "none" if s.score_threshold is None else repr(float(s.score_threshold)),
            "max_bytes": str(s.max_bytes), "max_pixels": str(s.max_pixels)}


def detector_config(s: ServeSettings, info: ModelInfo, max_batch: int, kind: str) -> str:
    params = {"role": "detector", "model_file": PLATFORMS[s.model.suffix][1], **common_params(s, info)}
    image = io_line(INPUT, "TYPE_UINT8", [-1], " allow_ragged_batch: true")
    return python_config(model_name(s), max_batch, [image], detection_outputs(info.max_detections, True),
                           s, kind, params)


def check_serve_settings(s: ServeSettings, info: ModelInfo) -> int:
    """The python model's max batch: the file's maximum unless given, 1..that maximum."""
    hi = info.batch[1]
    max_batch = hi if s.max_batch_size is None else s.max_batch_size
    if not 1 <= max_batch <= hi:
        raise DeployError(f"{s.model}: takes batch {info.batch[0]}..{hi}; --max-batch-size {max_batch} does not fit "
                          f"(1..{hi})")
    if s.max_queue_delay_us < 0:
        raise DeployError(f"--max-queue-delay-us must be >= 0, got {s.max_queue_delay_us}")
    if s.max_bytes < 1 or s.max_pixels < 1:
        raise DeployError("request limits must be >= 1")
    if s.kind is not None and s.kind not in KINDS:
        raise DeployError(f"--kind must be one of {', '.join(KINDS)}, got {s.kind}")
    return max_batch


def served_repository(s: ServeSettings) -> ServedRepository:
    """Write the whole repository (see module docstring); returns what it holds."""
    if s.model.suffix not in PLATFORMS:
        raise DeployError(f"{s.model}: serve takes .onnx or .engine/.plan files")
    info, _ = file_info(s.model)
    max_batch = check_serve_settings(s, info)
    kind = KINDS[s.kind or ("gpu" if PLATFORMS[s.model.suffix][0] == "tensorrt_plan" else "cpu")]
    name = model_name(s)
    text = detector_config(s, info, max_batch, kind)
    validate_config(text, f"{name}/config.pbtxt")
    folder = s.output / name
    (folder / "1").mkdir(parents=True, exist_ok=True)
    _copy(s.model, folder / "1" / PLATFORMS[s.model.suffix][1])
    if PLATFORMS[s.model.suffix][0] == "tensorrt_plan":     # the TensorRT backend reads the engine's contract there
        from runtime.engine_sidecar import sidecar_path

        _copy(sidecar_path(s.model), sidecar_path(folder / "1" / PLATFORMS[s.model.suffix][1]))
    write_atomic(folder / "1" / "model.py", (SOURCES / "detector.py").read_text())
    write_atomic(folder / "labels.txt", "".join(f"{n}\n" for n in _labels(info)))
    write_atomic(folder / "config.pbtxt", text)
    try:
        native = triton_repository(TritonSettings(model=s.model, output=s.output, name=f"{name}_native",
                                                  max_batch_size=max_batch, instances=s.instances, kind=kind,
                                                  max_queue_delay_us=s.max_queue_delay_us)).name
    except DeployError as e:                     # e.g. the EfficientNMS_TRT plugin: no ONNX Runtime backend for it
        return ServedRepository(s.output, name, None, None, f"no native model or ensemble: {e}")
    from export.triton_ensemble import write_ensemble

    ensemble = write_ensemble(replace(s, name=name), info, max_batch, kind, native)
    return ServedRepository(s.output, name, native, ensemble)


def _labels(info: ModelInfo) -> list[str]:
    return [info.class_name(c) for c in range(info.num_classes)]


def _copy(source: Path, target: Path) -> None:
    """The model file beside model.py (a temporary copy renamed into place: never half a file)."""
    tmp = target.with_name(f".{target.name}.tmp")
    shutil.copyfile(source, tmp)
    tmp.replace(target)
