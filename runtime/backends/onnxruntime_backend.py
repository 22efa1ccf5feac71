"""ONNX Runtime backend: CUDA / TensorRT execution providers when present and asked for, else CPU.
ONNX Runtime sessions are thread-safe for `run`; the EfficientNMS_TRT node runs via the CPU reference.
A device that cannot be used here is one warning line, then CPU."""
from __future__ import annotations

import numpy as np

from runtime.backends.base import Backend
from runtime.errors import DeployError
from runtime.gpu import cuda_device_count
from runtime.lazy import lazy_import
from runtime.log import logger
from runtime.model_info import ModelInfo
from runtime.onnx_session import create_session, metadata

# device -> providers, in ONNX Runtime's order of preference.
PROVIDERS = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}


def pick_providers(device: str | None) -> list[str]:
    """The device's providers that this onnxruntime build has (None: CUDA when a GPU is there, else CPU)."""
    available = set(lazy_import("onnxruntime", "onnxruntime-gpu").get_available_providers())
    if device is None:
        device = "cuda" if cuda_device_count() else "cpu"
    if device not in PROVIDERS:
        raise DeployError(f"device '{device}' is not one of {', '.join(PROVIDERS)}")
    if device != "cpu" and not cuda_device_count():
        logger.warning("device '%s' asked for, but there is no CUDA device here: running on CPU", device)
        return PROVIDERS["cpu"]
    wanted = PROVIDERS[device]
    return [p for p in wanted if p in available] or ["CPUExecutionProvider"]


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    def open(self) -> ModelInfo:
        self.session = create_session(self.path, pick_providers(self.device), threads=None)
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]
        return ModelInfo.from_metadata(metadata(self.session), str(self.path))

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        return dict(zip(self.output_names, self.session.run(self.output_names, {self.input_name: batch})))

    def describe(self) -> str:
        return f"{self.name} ({', '.join(self.session.get_providers())})"

    def close(self) -> None:
        self.session = None
