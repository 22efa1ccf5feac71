"""The ensemble beside a native model: N_pre (python: encoded image -> `images` + `letterbox`) -> N_native
(tensorrt_plan / onnxruntime_onnx) -> N_post (python: net_* + letterbox -> detections in original pixels),
served as N_ensemble with the same inputs and outputs as the python detector N. Tensor names and shapes follow
the native model's config, so the three steps cannot disagree; every config passes Triton's schema first."""
from __future__ import annotations

from export.triton import validate_config
from export.triton_served import (SOURCES, INPUT, ServeSettings, common_params, detection_outputs, io_line,
                                  model_name, param_lines, python_config)
from runtime.atomic import write_atomic
from runtime.model_info import NMS_OUTPUTS, ModelInfo


def _native_tensors(s: ServeSettings, native: str) -> tuple[list[int], list[tuple[str, str, list[int]]]]:
    """(the native input's dims, [(output name, TYPE_*, dims)]) from its written config."""
    from tritonclient.grpc import model_config_pb2 as pb

    config = validate_config((s.output / native / "config.pbtxt").read_text(), native)
    outputs = [(o.name, pb.DataType.Name(o.data_type), list(o.dims)) for o in config.output]  # type: ignore[attr-defined]
    return list(config.input[0].dims), outputs                                              # type: ignore[attr-defined]


def step_configs(s: ServeSettings, info: ModelInfo, max_batch: int, kind: str, native: str) -> dict[str, str]:
    """{model name: config.pbtxt} for N_pre and N_post."""
    image_dims, outputs = _native_tensors(s, native)
    dtype = "TYPE_UINT8" if info.input_dtype == "uint8" else "TYPE_FP32"
    params, name = common_params(s, info), model_name(s)
    letterbox = io_line("letterbox", "TYPE_FP32", [3])
    encoded = io_line(INPUT, "TYPE_UINT8", [-1], " allow_ragged_batch: true")
    pre = python_config(f"{name}_pre", max_batch, [encoded], [io_line("images", dtype, image_dims), letterbox],
                        s, kind, {"role": "pre", **params})
    net = [io_line(f"net_{n}", t, d) for n, t, d in outputs]
    post = python_config(f"{name}_post", max_batch, net + [letterbox], detection_outputs(info.max_detections),
                         s, kind, {"role": "post", **params})
    return {f"{name}_pre": pre, f"{name}_post": post}


def _maps(kind: str, pairs: list[tuple[str, str]]) -> str:
    return " ".join(f'{kind} {{ key: "{k}" value: "{v}" }}' for k, v in pairs)


def ensemble_config(s: ServeSettings, info: ModelInfo, max_batch: int, native: str) -> str:
    """The ensemble's config.pbtxt: IMAGE in, the four detection outputs out, three steps."""
    name = model_name(s)
    _, outputs = _native_tensors(s, native)
    net = [(n, f"net_{n}") for n, _, _ in outputs]
    steps = [(f"{name}_pre", [(INPUT, INPUT)], [("images", "images"), ("letterbox", "letterbox")]),
             (native, [("images", "images")], net),
             (f"{name}_post", [(v, v) for _, v in net] + [("letterbox", "letterbox")], [(k, k) for k in NMS_OUTPUTS])]
    step_text = ",\n".join(f'  {{ model_name: "{m}" model_version: -1 {_maps("input_map", i)} {_maps("output_map", o)} }}'
                           for m, i, o in steps)
    lines = [f'name: "{name}_ensemble"', 'platform: "ensemble"', f"max_batch_size: {max_batch}",
             "input [", io_line(INPUT, "TYPE_UINT8", [-1]), "]",
             "output [", ",\n".join(detection_outputs(info.max_detections)), "]",
             "ensemble_scheduling { step [", step_text, "] }"]
    return "\n".join(lines + param_lines({"role": "ensemble", **common_params(s, info)})) + "\n"


def write_ensemble(s: ServeSettings, info: ModelInfo, max_batch: int, kind: str, native: str) -> str:
    """Write N_pre, N_post and N_ensemble (all validated before the first write); returns the ensemble's name."""
    configs = step_configs(s, info, max_batch, kind, native)
    configs[f"{model_name(s)}_ensemble"] = ensemble_config(s, info, max_batch, native)
    for name, text in configs.items():
        validate_config(text, f"{name}/config.pbtxt")
    for name, text in configs.items():
        (s.output / name / "1").mkdir(parents=True, exist_ok=True)
        role = name.rsplit("_", 1)[1]
        if role != "ensemble":
            write_atomic(s.output / name / "1" / "model.py", (SOURCES / f"{role}.py").read_text())
        write_atomic(s.output / name / "config.pbtxt", text)
    return f"{model_name(s)}_ensemble"
