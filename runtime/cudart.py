"""The CUDA runtime calls the toolkit makes, as small fully typed functions over cuda-python's
`cuda.bindings.runtime` (12.6+ and 13.x; typed by typings/cuda/bindings/runtime.pyi).

Pointers and stream handles are plain ints (what TensorRT's `set_tensor_address` / `execute_async_v3`
take); every failure is one DeployError line naming the call and CUDA's own error name. Importing this
module is the lazy boundary: it is imported only by code that runs on a GPU.

Each function is the CUDA Runtime API call in its body; signatures read from cuda-bindings'
runtime.pyx.in at v12.9.10 and v13.4.4 (identical for every call here). cuda.core (typed, with stubs) is
not used: cuda-python 12.x, which JetPack 6 and R535-R570 drivers need, does not bring it (13.x does).
"""
from __future__ import annotations

from typing import TypeAlias, TypeVar

from runtime.errors import DeployError

try:
    from cuda.bindings import runtime as rt   # cuda-python >= 12.6 (13.0 removed the old cuda.cudart)
except ImportError as _e:
    raise DeployError(f"this needs cuda-python ({_e.msg}); install the one matching TensorRT's CUDA major: "
                      "pip install 'cuda-python>=12.6.2,<13' (CUDA 12) or 'cuda-python>=13,<14' (CUDA 13)") from None

T = TypeVar("T")
Event: TypeAlias = rt.cudaEvent_t
GraphExec: TypeAlias = rt.cudaGraphExec_t


def error_text(err: rt.cudaError_t) -> str:
    """'cudaErrorInsufficientDriver (35): CUDA driver version is insufficient ...' (cudaGetErrorName/String)."""
    _, name = rt.cudaGetErrorName(err)
    _, text = rt.cudaGetErrorString(err)
    return f"{name.decode(errors='replace')} ({int(err)}): {text.decode(errors='replace')}"


def check(err: rt.cudaError_t, call: str) -> None:
    """DeployError naming the call and CUDA's error unless err is cudaSuccess."""
    if err != rt.cudaError_t.cudaSuccess:
        raise DeployError(f"CUDA error in {call}: {error_text(err)}")


def _value(result: tuple[rt.cudaError_t, T | None], call: str) -> T:
    err, value = result
    check(err, call)
    if value is None:
        raise DeployError(f"CUDA error in {call}: no value returned")
    return value


def native_handle(obj: rt.cudaStream_t) -> int:
    """The handle's address as an int: cuda.bindings.utils.get_cuda_native_handle (12.9+/13.x), as the
    cuda-bindings 13.0.0 release notes ask instead of the deprecated int(obj); int(obj) before 12.9."""
    try:
        from cuda.bindings.utils import get_cuda_native_handle
    except ImportError:
        return int(obj)   # cuda-bindings 12.6-12.8: __int__ is the only way there
    return get_cuda_native_handle(obj)


# -- versions and devices ------------------------------------------------------------------------------
def driver_version() -> int:
    """Newest CUDA the installed driver supports, as 1000*major + 10*minor (0: no driver); cudaDriverGetVersion."""
    err, value = rt.cudaDriverGetVersion()
    return (value or 0) if err == rt.cudaError_t.cudaSuccess else 0


def runtime_version() -> int:
    """CUDA runtime cuda-python was built against (12090, 13040, ...); cudaRuntimeGetVersion."""
    return _value(rt.cudaRuntimeGetVersion(), "cudaRuntimeGetVersion")


def device_count() -> int:
    return _value(rt.cudaGetDeviceCount(), "cudaGetDeviceCount")


def set_device(index: int) -> None:
    """Make `index` the calling thread's current device (the current device is per host thread)."""
    check(rt.cudaSetDevice(index)[0], f"cudaSetDevice({index})")


def current_device() -> int:
    return _value(rt.cudaGetDevice(), "cudaGetDevice")


def device_properties(index: int) -> tuple[str, str]:
    """(GPU name, compute capability 'major.minor'); cudaGetDeviceProperties (name is bytes in 12.x and 13.x)."""
    prop = _value(rt.cudaGetDeviceProperties(index), f"cudaGetDeviceProperties({index})")
    return prop.name.decode(errors="replace").rstrip("\x00"), f"{prop.major}.{prop.minor}"


# -- memory ----------------------------------------------------------------------------------------------
def malloc_host(nbytes: int) -> int:
    """Page-locked host memory (needed for truly asynchronous copies); cudaMallocHost."""
    return _value(rt.cudaMallocHost(nbytes), f"cudaMallocHost({nbytes})")


def free_host(ptr: int) -> None:
    check(rt.cudaFreeHost(ptr)[0], "cudaFreeHost")


def malloc(nbytes: int) -> int:
    return _value(rt.cudaMalloc(nbytes), f"cudaMalloc({nbytes})")


def free(ptr: int) -> None:
    check(rt.cudaFree(ptr)[0], "cudaFree")


def copy_to_device(dst: int, src: int, nbytes: int, stream: int) -> None:
    kind = rt.cudaMemcpyKind.cudaMemcpyHostToDevice
    check(rt.cudaMemcpyAsync(dst, src, nbytes, kind, stream)[0], "cudaMemcpyAsync(host to device)")


def copy_to_host(dst: int, src: int, nbytes: int, stream: int) -> None:
    kind = rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
    check(rt.cudaMemcpyAsync(dst, src, nbytes, kind, stream)[0], "cudaMemcpyAsync(device to host)")


# -- streams and events -----------------------------------------------------------------------------------
def stream_create() -> int:
    """A new stream on the current device, as its native handle; cudaStreamCreate."""
    return native_handle(_value(rt.cudaStreamCreate(), "cudaStreamCreate"))


def stream_destroy(stream: int) -> None:
    check(rt.cudaStreamDestroy(stream)[0], "cudaStreamDestroy")


def stream_synchronize(stream: int) -> None:
    check(rt.cudaStreamSynchronize(stream)[0], "cudaStreamSynchronize")


def event_create() -> Event:
    return _value(rt.cudaEventCreate(), "cudaEventCreate")


def event_record(event: Event, stream: int) -> None:
    check(rt.cudaEventRecord(event, stream)[0], "cudaEventRecord")


def event_elapsed_ms(start: Event, end: Event) -> float:
    """Milliseconds between two recorded, completed events; cudaEventElapsedTime."""
    return float(_value(rt.cudaEventElapsedTime(start, end), "cudaEventElapsedTime"))


def event_destroy(event: Event) -> None:
    check(rt.cudaEventDestroy(event)[0], "cudaEventDestroy")


# -- CUDA graphs (as trtexec's TrtCudaGraph in samples/common/sampleDevice.h, v8.6.1-v11.1) ----------------
def begin_capture(stream: int) -> None:
    """Thread-local capture mode, as trtexec: other threads' CUDA calls cannot invalidate it."""
    mode = rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
    check(rt.cudaStreamBeginCapture(stream, mode)[0], "cudaStreamBeginCapture")


def end_capture(stream: int) -> GraphExec:
    """End a successful capture: instantiate the graph, destroy the template (trtexec endCapture)."""
    graph = _value(rt.cudaStreamEndCapture(stream), "cudaStreamEndCapture")
    try:
        return _value(rt.cudaGraphInstantiate(graph, 0), "cudaGraphInstantiate")
    finally:
        check(rt.cudaGraphDestroy(graph)[0], "cudaGraphDestroy")


def abandon_capture(stream: int) -> str:
    """End a failed capture whatever its state and clear the sticky error (trtexec endCaptureOnError,
    then cudaGetLastError); returns what CUDA said, for the warning."""
    err, graph = rt.cudaStreamEndCapture(stream)
    if graph is not None and err == rt.cudaError_t.cudaSuccess:
        rt.cudaGraphDestroy(graph)
    (last,) = rt.cudaGetLastError()
    reported = err if err != rt.cudaError_t.cudaSuccess else last
    return error_text(reported) if reported != rt.cudaError_t.cudaSuccess else "the enqueue failed during capture"


def clear_error() -> None:
    """Reset the thread's last CUDA error (cudaGetLastError), as trtexec does after a failed capture."""
    rt.cudaGetLastError()


def is_capturing(stream: int) -> bool:
    status = _value(rt.cudaStreamIsCapturing(stream), "cudaStreamIsCapturing")
    return status != rt.cudaStreamCaptureStatus.cudaStreamCaptureStatusNone


def graph_launch(graph_exec: GraphExec, stream: int) -> None:
    check(rt.cudaGraphLaunch(graph_exec, stream)[0], "cudaGraphLaunch")


def graph_exec_destroy(graph_exec: GraphExec) -> None:
    check(rt.cudaGraphExecDestroy(graph_exec)[0], "cudaGraphExecDestroy")
