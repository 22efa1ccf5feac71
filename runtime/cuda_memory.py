"""cuda-python helpers for the TensorRT backend: error checks, a stream, pinned host + device buffers,
events and CUDA graphs. pycuda is not used (it does not build everywhere; NVIDIA's samples moved on)."""
from __future__ import annotations

import ctypes
from typing import Any

import numpy as np

from runtime.errors import DeployError
from runtime.trt_compat import cuda_runtime


def check(result: Any) -> Any:
    """Unpack a cuda-python (err, *values) tuple; DeployError with CUDA's own message on failure."""
    cudart = cuda_runtime()
    err, *values = result if isinstance(result, tuple) else (result,)
    if err != cudart.cudaError_t.cudaSuccess:
        _, text = cudart.cudaGetErrorString(err)
        raise DeployError(f"CUDA error {int(err)}: {text.decode() if isinstance(text, bytes) else text}")
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


def device_properties(device: int = 0) -> tuple[str, str]:
    """(GPU name, compute capability 'major.minor') of a device; DeployError without a usable GPU."""
    cudart = cuda_runtime()
    count = check(cudart.cudaGetDeviceCount())
    if not count:
        raise DeployError("no CUDA GPU found")
    prop = check(cudart.cudaGetDeviceProperties(device))
    name = prop.name.decode(errors="replace").rstrip("\x00") if isinstance(prop.name, bytes) else str(prop.name)
    return name, f"{prop.major}.{prop.minor}"


class PinnedBuffer:
    """Page-locked host memory (fast, async copies) with a device twin of the same size."""

    def __init__(self, nbytes: int) -> None:
        cudart = cuda_runtime()
        self.nbytes = max(1, nbytes)
        self.host_ptr = int(check(cudart.cudaMallocHost(self.nbytes)))
        self.device_ptr = int(check(cudart.cudaMalloc(self.nbytes)))

    def host_array(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """A numpy view of the pinned memory (no copy); shape must fit the allocation."""
        count = int(np.prod(shape)) * np.dtype(dtype).itemsize
        if count > self.nbytes:
            raise DeployError(f"tensor of {count} bytes does not fit its {self.nbytes}-byte buffer")
        raw = (ctypes.c_byte * count).from_address(self.host_ptr)
        return np.frombuffer(raw, dtype=dtype).reshape(shape)

    def to_device(self, nbytes: int, stream: Any) -> None:
        cudart = cuda_runtime()
        check(cudart.cudaMemcpyAsync(self.device_ptr, self.host_ptr, nbytes,
                                     cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, stream))

    def to_host(self, nbytes: int, stream: Any) -> None:
        cudart = cuda_runtime()
        check(cudart.cudaMemcpyAsync(self.host_ptr, self.device_ptr, nbytes,
                                     cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost, stream))

    def free(self) -> None:
        cudart = cuda_runtime()
        if self.device_ptr:
            check(cudart.cudaFree(self.device_ptr))
            check(cudart.cudaFreeHost(self.host_ptr))
            self.device_ptr = self.host_ptr = 0


class EventTimer:
    """CUDA events around the H2D / compute / D2H phases of one run (milliseconds, GPU clock)."""

    PHASES = ("h2d", "compute", "d2h")

    def __init__(self) -> None:
        cudart = cuda_runtime()
        self.events = [check(cudart.cudaEventCreate()) for _ in range(len(self.PHASES) + 1)]

    def mark(self, index: int, stream: Any) -> None:
        check(cuda_runtime().cudaEventRecord(self.events[index], stream))

    def elapsed(self) -> dict[str, float]:
        cudart = cuda_runtime()
        return {phase: float(check(cudart.cudaEventElapsedTime(self.events[i], self.events[i + 1])))
                for i, phase in enumerate(self.PHASES)}

    def destroy(self) -> None:
        for event in self.events:
            check(cuda_runtime().cudaEventDestroy(event))
        self.events = []
