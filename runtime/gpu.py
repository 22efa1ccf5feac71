"""Is there a usable NVIDIA GPU? Asked of the driver itself (libcuda via ctypes), so the answer needs no
CUDA toolkit, no cuda-python and no framework, and costs nothing on machines without one."""
from __future__ import annotations

import ctypes
import functools


@functools.lru_cache(maxsize=1)
def cuda_device_count() -> int:
    """Number of CUDA devices the driver reports; 0 without a driver or GPU."""
    try:
        lib = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return 0
    count = ctypes.c_int(0)
    if lib.cuInit(0) != 0 or lib.cuDeviceGetCount(ctypes.byref(count)) != 0:
        return 0
    return int(count.value)
