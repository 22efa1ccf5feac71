"""Is there a usable NVIDIA GPU, and which driver? Asked of the driver itself (libcuda via ctypes, the
kernel module's /proc file), so the answer needs no CUDA toolkit, no cuda-python and no framework, and
costs nothing on machines without one."""
from __future__ import annotations

import ctypes
import functools
from pathlib import Path
from typing import Protocol, cast


class _DriverApi(Protocol):
    """The two CUDA driver API calls used here (cuda.h: CUresult cuInit(unsigned int),
    CUresult cuDeviceGetCount(int*)); CUresult 0 is CUDA_SUCCESS."""

    def cuInit(self, flags: int) -> int: ...

    def cuDeviceGetCount(self, count: ctypes._CArgObject) -> int: ...


@functools.lru_cache(maxsize=1)
def cuda_device_count() -> int:
    """Number of CUDA devices the driver reports; 0 without a driver or GPU."""
    try:
        lib = cast(_DriverApi, ctypes.CDLL("libcuda.so.1"))
    except OSError:
        return 0
    count = ctypes.c_int(0)
    if lib.cuInit(0) != 0 or lib.cuDeviceGetCount(ctypes.byref(count)) != 0:
        return 0
    return int(count.value)


def driver_release(proc_file: Path = Path("/proc/driver/nvidia/version")) -> str:
    """'580.65.06' from the kernel module's version line; 'unknown' where there is none (Jetson, WSL, none)."""
    try:
        first = proc_file.read_text().splitlines()[0]
    except (OSError, IndexError):
        return "unknown"
    words = [w for w in first.split() if w[:1].isdigit() and "." in w]
    return words[0] if words else "unknown"
