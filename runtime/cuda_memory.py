"""Buffers and timers for the TensorRT backend and the legacy calibrator, over the typed CUDA calls in
runtime/cudart.py: pinned host + device buffers, CUDA-event phase timings. pycuda is not used (it does not
build everywhere; NVIDIA's samples moved on)."""
from __future__ import annotations

import ctypes

import numpy as np

from runtime import cudart
from runtime.errors import DeployError


def device_properties(device: int = 0) -> tuple[str, str]:
    """(GPU name, compute capability 'major.minor') of a device; DeployError without a usable GPU."""
    if not cudart.device_count():
        raise DeployError("no CUDA GPU found")
    return cudart.device_properties(device)


class PinnedBuffer:
    """Page-locked host memory (fast, async copies) with a device twin of the same size.

    Streams are native handles (ints; 0 = the legacy default stream). A failed allocation frees what
    was already allocated before the error goes up.
    """

    def __init__(self, nbytes: int) -> None:
        self.nbytes = max(1, nbytes)
        self.host_ptr = cudart.malloc_host(self.nbytes)
        try:
            self.device_ptr = cudart.malloc(self.nbytes)
        except BaseException:
            cudart.free_host(self.host_ptr)
            self.host_ptr = 0
            raise

    def host_array(self, shape: tuple[int, ...], dtype: np.dtype | type[np.generic]) -> np.ndarray:
        """A numpy view of the pinned memory (no copy); shape must fit the allocation."""
        count = int(np.prod(shape)) * np.dtype(dtype).itemsize
        if count > self.nbytes:
            raise DeployError(f"tensor of {count} bytes does not fit its {self.nbytes}-byte buffer")
        raw = (ctypes.c_byte * count).from_address(self.host_ptr)
        return np.frombuffer(memoryview(raw), dtype=np.dtype(dtype)).reshape(shape)

    def to_device(self, nbytes: int, stream: int) -> None:
        cudart.copy_to_device(self.device_ptr, self.host_ptr, nbytes, stream)

    def to_host(self, nbytes: int, stream: int) -> None:
        cudart.copy_to_host(self.host_ptr, self.device_ptr, nbytes, stream)

    def free(self) -> None:
        """Release both allocations (idempotent)."""
        device, host = self.device_ptr, self.host_ptr
        self.device_ptr = self.host_ptr = 0
        try:
            if device:
                cudart.free(device)
        finally:
            if host:
                cudart.free_host(host)


class EventTimer:
    """CUDA events around the H2D / compute / D2H phases of one run (milliseconds, GPU clock)."""

    PHASES = ("h2d", "compute", "d2h")

    def __init__(self) -> None:
        self.events: list[cudart.Event] = []
        try:
            for _ in range(len(self.PHASES) + 1):
                self.events.append(cudart.event_create())
        except BaseException:
            self.destroy()
            raise

    def mark(self, index: int, stream: int) -> None:
        cudart.event_record(self.events[index], stream)

    def elapsed(self) -> dict[str, float]:
        """Per-phase milliseconds; call after the stream has been synchronized."""
        return {phase: cudart.event_elapsed_ms(self.events[i], self.events[i + 1])
                for i, phase in enumerate(self.PHASES)}

    def destroy(self) -> None:
        events, self.events = self.events, []
        for event in events:
            cudart.event_destroy(event)
