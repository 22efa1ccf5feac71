"""ONNX Runtime backend: CUDA / TensorRT execution providers when present and asked for, else CPU.
ONNX Runtime sessions are thread-safe for `run`; the EfficientNMS_TRT node runs via the CPU reference.
A device that cannot be used here is one warning line, then CPU."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from runtime.backends.base import Backend
from runtime.errors import DeployError
from runtime.gpu import cuda_device_count
from runtime.lazy import lazy_import
from runtime.log import logger
from runtime.model_info import ModelInfo
from runtime.interrupts import deferred_sigint
from runtime.onnx_session import Provider, create_session, has_plugin_node, metadata

# device -> providers, in ONNX Runtime's order of preference.
PROVIDERS = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}


def pick_providers(device: str | None) -> list[Provider]:
    """The device's providers that this onnxruntime build has (None: CUDA when a GPU is there, else CPU).
    'cuda:N' / 'tensorrt:N' pass N as the GPU providers' documented `device_id` option."""
    available = set(lazy_import("onnxruntime", "onnxruntime-gpu").get_available_providers())
    count = cuda_device_count()
    kind, _, index = (device or ("cuda" if count else "cpu")).partition(":")
    if kind not in PROVIDERS or (index and (kind == "cpu" or not index.isdigit())):
        raise DeployError(f"device '{device}' is not one of {', '.join(PROVIDERS)}, cuda:N, tensorrt:N")
    if kind != "cpu" and not count:
        logger.warning("device '%s' asked for, but there is no CUDA device here: running on CPU", device)
        return list(PROVIDERS["cpu"])
    if index and int(index) >= count:
        raise DeployError(f"device '{device}': this machine has {count} CUDA device(s), numbered from 0")
    wanted = [p for p in PROVIDERS[kind] if p in available] or ["CPUExecutionProvider"]
    return [(p, {"device_id": int(index)}) if index and p != "CPUExecutionProvider" else p for p in wanted]


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    def __init__(self, path: str | Path, device: str | None = None, threads: int | None = None) -> None:
        self.threads = threads           # intra-op threads (`--threads`); None: ONNX Runtime's default
        super().__init__(path, device)

    def open(self) -> ModelInfo:
        self.session = create_session(self.path, pick_providers(self.device), threads=self.threads)
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.python_ops = has_plugin_node(self.path)     # the EfficientNMS_TRT stand-in runs Python code
        return ModelInfo.from_metadata(metadata(self.session), str(self.path))

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        if not self.python_ops:
            return dict(zip(self.output_names, self.session.run(self.output_names, {self.input_name: batch})))
        with deferred_sigint():          # Ctrl-C inside the Python NMS op would abort in C++ (runtime/interrupts)
            outputs = self.session.run(self.output_names, {self.input_name: batch})
        return dict(zip(self.output_names, outputs))

    def describe(self) -> str:
        threads = f", {self.threads} intra-op threads" if self.threads else ""
        return f"{self.name} ({', '.join(self.session.get_providers())}{threads})"

    def close(self) -> None:
        self.session = None
