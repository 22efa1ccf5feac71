"""TensorRT backend over cuda-python: one stream, pinned host buffers and device buffers allocated once
for the profile's largest batch and reused, name-based tensors (`set_tensor_address`,
`set_input_shape`, `execute_async_v3`), optional CUDA graph capture, CUDA-event phase timings.

Not re-entrant: the Detector serializes calls; use one Detector (one execution context) per thread for
parallel work. The engine's ModelInfo comes from its sidecar (written by `effdet-deploy build`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from runtime.backends.base import Backend
from runtime.cuda_memory import EventTimer, PinnedBuffer, check, device_properties
from runtime.engine_sidecar import check_engine, read_sidecar, sidecar_path
from runtime.errors import DeployError
from runtime.model_info import ModelInfo
from runtime.trt_compat import cuda_runtime, numpy_dtype, tensorrt


def _device_index(device: str | None) -> int:
    """'cuda', 'cuda:1', '1' or None -> device index."""
    if device is None or device in ("cuda", "gpu"):
        return 0
    try:
        return int(device.split(":")[-1])
    except ValueError:
        raise DeployError(f"device '{device}' is not 'cuda' or 'cuda:N'") from None


class TensorRTBackend(Backend):
    name = "tensorrt"

    def __init__(self, path: str | Path, device: str | None = None, use_cuda_graph: bool = False) -> None:
        self.use_cuda_graph = use_cuda_graph
        self.last_gpu_ms: dict[str, float] = {}
        self.buffers: dict[str, PinnedBuffer] = {}
        super().__init__(path, device)

    def open(self) -> ModelInfo:
        trt = tensorrt()
        cudart = cuda_runtime()
        index = _device_index(self.device)
        check(cudart.cudaSetDevice(index))
        sidecar = read_sidecar(self.path)
        if sidecar is None:
            raise DeployError(f"{self.path}: no {sidecar_path(self.path).name} beside it (the engine's input contract); "
                              "build engines with `effdet-deploy build`")
        gpu, cc = device_properties(index)
        check_engine(self.path, sidecar, trt.__version__, gpu, cc)
        self.trt_logger = trt.Logger(trt.Logger.WARNING)
        trt.init_libnvinfer_plugins(self.trt_logger, "")
        self.runtime = trt.Runtime(self.trt_logger)
        self.engine = self.runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self.engine is None:
            raise DeployError(f"{self.path}: TensorRT {trt.__version__} cannot deserialize it (damaged, or built "
                              f"with TensorRT {sidecar.get('tensorrt_version', '?')})")
        self.context = self.engine.create_execution_context()
        self.stream = check(cudart.cudaStreamCreate())
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if n not in self.inputs]
        self._allocate()
        self.timer = EventTimer()
        self.graph_exec: Any = None
        self.shape: tuple[int, ...] = ()
        return ModelInfo.from_metadata(sidecar.get("onnx_metadata", {}), str(self.path))

    def _allocate(self) -> None:
        """Buffers for the largest shape the engine accepts, bound once with set_tensor_address."""
        name = self.inputs[0]
        shape = tuple(self.engine.get_tensor_shape(name))
        if -1 in shape:
            shape = tuple(self.engine.get_tensor_profile_shape(name, 0)[2])
        self.max_shape = shape
        self.context.set_input_shape(name, shape)
        for tensor in self.inputs + self.outputs:
            dims = tuple(self.context.get_tensor_shape(tensor))
            dtype = numpy_dtype(self.engine.get_tensor_dtype(tensor))
            self.buffers[tensor] = PinnedBuffer(int(np.prod(dims)) * np.dtype(dtype).itemsize)
            self.context.set_tensor_address(tensor, self.buffers[tensor].device_ptr)

    def _set_shape(self, shape: tuple[int, ...]) -> None:
        if shape == self.shape:
            return
        if len(shape) != len(self.max_shape) or shape[0] > self.max_shape[0] or shape[1:] != self.max_shape[1:]:
            raise DeployError(f"{self.path}: input {shape} does not fit the engine (at most {self.max_shape})")
        if not self.context.set_input_shape(self.inputs[0], shape):
            raise DeployError(f"{self.path}: TensorRT rejected input shape {shape} (outside the profile)")
        self.shape, self.graph_exec = shape, None

    def _enqueue(self) -> None:
        cudart = cuda_runtime()
        if self.graph_exec is not None:
            check(cudart.cudaGraphLaunch(self.graph_exec, self.stream))
        elif not self.context.execute_async_v3(int(self.stream)):
            raise DeployError(f"{self.path}: execute_async_v3 failed")

    def _capture(self) -> None:
        """Record one enqueue as a CUDA graph (after a normal run at this shape, as TensorRT requires)."""
        cudart = cuda_runtime()
        check(cudart.cudaStreamBeginCapture(self.stream, cudart.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal))
        self.context.execute_async_v3(int(self.stream))
        graph = check(cudart.cudaStreamEndCapture(self.stream))
        self.graph_exec = check(cudart.cudaGraphInstantiate(graph, 0))

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        name = self.inputs[0]
        first_at_shape = tuple(batch.shape) != self.shape
        self._set_shape(tuple(batch.shape))
        buf = self.buffers[name]
        staged = buf.host_array(batch.shape, numpy_dtype(self.engine.get_tensor_dtype(name)))
        staged[...] = batch                                  # cast to the engine's input type if it differs
        self.timer.mark(0, self.stream)
        buf.to_device(staged.nbytes, self.stream)
        self.timer.mark(1, self.stream)
        self._enqueue()
        self.timer.mark(2, self.stream)
        results = {}
        for out in self.outputs:
            dims = tuple(self.context.get_tensor_shape(out))
            dtype = numpy_dtype(self.engine.get_tensor_dtype(out))
            self.buffers[out].to_host(int(np.prod(dims)) * np.dtype(dtype).itemsize, self.stream)
            results[out] = self.buffers[out].host_array(dims, dtype)
        self.timer.mark(3, self.stream)
        check(cuda_runtime().cudaStreamSynchronize(self.stream))
        self.last_gpu_ms = self.timer.elapsed()
        if self.use_cuda_graph and first_at_shape:
            self._capture()
        return {k: v.copy() for k, v in results.items()}  # buffers are reused by the next call

    def close(self) -> None:
        for buf in self.buffers.values():
            buf.free()
        self.buffers = {}
        if getattr(self, "stream", None) is not None:
            check(cuda_runtime().cudaStreamDestroy(self.stream))
            self.stream = None
        if getattr(self, "timer", None) is not None:
            self.timer.destroy()
            self.timer = None  # type: ignore[assignment]
