"""TensorRT runtime policy that runs without TensorRT or a GPU: engine version rules, I/O types, batch
limits, CUDA-major checks, error paths, CUDA-graph fallback and per-thread devices (issue 11, runtime half).
"""
from __future__ import annotations

import logging
import threading

import numpy as np
import pytest

from runtime.engine_sidecar import check_engine, read_sidecar, write_sidecar
from runtime.errors import DeployError
from runtime.gpu import cuda_device_count, driver_release
from runtime.trt_compat import (cuda_mismatch, loads_engine, loads_version_compatible, numpy_dtype,
                                profile_batch_limits, tensorrt_cuda_major)
from runtime.trt_messages import TrtMessages


@pytest.fixture()
def engine(tmp_path):
    path = tmp_path / "m.engine"
    path.write_bytes(b"\x00" * 100)
    write_sidecar(path, {"tensorrt_version": "10.13.0.35", "gpu_name": "NVIDIA H100", "compute_capability": "9.0",
                         "version_compatible": True, "onnx_metadata": {}})
    return path


@pytest.mark.parametrize("built,runtime,loads", [
    ("10.13.0.35", "10.13.0.35", True), ("10.3.0", "10.13.0", True), ("10.13.0", "10.3.0", False),
    ("10.13.0", "11.0.0", True), ("10.3.0", "11.4.0", True),            # 11.x support matrix: 10 VC -> 11
    ("8.6.1", "10.3.0", True), ("8.6.1", "11.0.0", False),              # 8 -> 10 only, never 8 -> 11
    ("8.5.3", "8.6.1", False),                                          # VC exists from 8.6
    ("11.0.0", "11.1.0", True), ("11.1.0", "11.0.0", False), ("11.0.0", "10.13.0", False),
    ("10.13.3.9", "10.13.0.35", False), ("10.13.0.35", "10.13.3.9", True),   # patch releases: never backwards
    ("10.13.0.35", "10.13.0.36", True),                                  # the build number is not a release
    ("8.6.1", "9.2.0", True), ("9.2.0", "10.3.0", True),                # 10.x guide: 8 -> 9, 8/9 -> 10
    ("9.2.0", "11.0.0", False), ("9.3.0", "9.2.0", False),
])
def test_version_compatible_cross_major_rule(built, runtime, loads):
    assert loads_version_compatible(built, runtime) is loads


def test_plain_engines_need_the_exact_version():
    assert loads_engine("10.13.0.35", "10.13.0.35", False)
    assert not loads_engine("10.13.0.35", "10.13.2.6", False)
    assert loads_engine("10.13.0.35", "11.0.0", True)


def test_sidecar_check_lets_a_10_vc_engine_load_on_11(engine):
    side = read_sidecar(engine)
    check_engine(engine, side, "11.0.0.1", "NVIDIA H100", "9.0")
    with pytest.raises(DeployError, match=r"built with TensorRT 10.13.0.35, this is TensorRT 10.3.0.*8 -> 10"):
        check_engine(engine, side, "10.3.0", "NVIDIA H100", "9.0")


def test_a_vc_engine_from_a_later_patch_release_is_refused(engine):
    """10.13.3 -> 10.13.0 passed when only major.minor was compared."""
    side = {**read_sidecar(engine), "tensorrt_version": "10.13.3.9"}
    with pytest.raises(DeployError, match=r"built with TensorRT 10.13.3.9, this is TensorRT 10.13.0.35.*patch"):
        check_engine(engine, side, "10.13.0.35", "NVIDIA H100", "9.0")
    check_engine(engine, side, "10.14.1.48", "NVIDIA H100", "9.0")


def test_hardware_compatible_key_is_not_trusted(engine):
    """Nothing writes it (build has no hardware-compatibility option): the GPU must match."""
    side = {**read_sidecar(engine), "hardware_compatible": True}
    with pytest.raises(DeployError, match=r"built for NVIDIA H100 \(sm 9.0\), this GPU is Orin \(sm 8.7\)"):
        check_engine(engine, side, "10.13.0.35", "Orin", "8.7")


@pytest.mark.parametrize("name", ["BF16", "FP8", "INT4", "FP4", "E8M0"])
def test_io_types_without_numpy_type_are_refused(name):
    with pytest.raises(DeployError, match=rf"m.engine: I/O tensor 'images' is {name}, which numpy has no type"):
        numpy_dtype(name, "images", "m.engine")


def test_io_types_numpy_holds():
    assert numpy_dtype("FLOAT", "x", "e") == np.float32 and numpy_dtype("HALF", "x", "e") == np.float16
    assert numpy_dtype("INT32", "x", "e") == np.int32 and numpy_dtype("UINT8", "x", "e") == np.uint8


def test_batch_limits_come_from_the_profile():
    assert profile_batch_limits((4, 3, 64, 64), None) == (4, 4)
    profile = ((2, 3, 64, 64), (4, 3, 64, 64), (6, 3, 64, 64))
    assert profile_batch_limits((-1, 3, 64, 64), profile) == (2, 6)
    with pytest.raises(DeployError, match="without an optimization profile"):
        profile_batch_limits((-1, 3, 64, 64), None)


def test_cuda_major_mismatch_is_one_line_naming_all_three():
    line = cuda_mismatch("535.104.05", 12020, 13000, "10.3.0", 12)
    assert line is not None and "\n" not in line
    for part in ("driver 535.104.05 (CUDA 12.2)", "CUDA runtime 13.0", "TensorRT 10.3.0 (CUDA 12)",
                 "pip install 'cuda-python>=12.6.2,<13'", "supports CUDA 12.2 only", "TensorRT is built for CUDA 12"):
        assert part in line, part
    assert cuda_mismatch("580.65.06", 13000, 12090, "10.13.3", 12) is None     # newer driver: fine
    assert cuda_mismatch("540.4.0", 12060, 12090, "10.3.0", None) is None      # JetPack: minor compatibility
    assert "no NVIDIA driver" in (cuda_mismatch("unknown", 0, 12090, "10.3.0", None) or "")
    assert "pip install 'cuda-python>=13,<14'" in (cuda_mismatch("580.65.06", 13000, 12090, "11.4.0", 13) or "")


def test_tensorrt_cuda_major_from_wheel_names():
    assert tensorrt_cuda_major(["numpy", "tensorrt_cu12_bindings", "tensorrt-cu12"]) == 12
    assert tensorrt_cuda_major(["tensorrt-cu13-bindings"]) == 13
    assert tensorrt_cuda_major(["numpy"]) is None                                 # system TensorRT (JetPack)


def test_driver_release_from_the_kernel_module_line(tmp_path):
    proc = tmp_path / "version"
    proc.write_text("NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.65.06  Release Build  (dvs)\n")
    assert driver_release(proc) == "580.65.06"
    assert driver_release(tmp_path / "absent") == "unknown"


def test_tensorrt_messages_keep_the_last_error_on_one_line():
    messages = TrtMessages()
    assert messages.suffix() == ""
    messages.record(2, "a warning")
    messages.record(1, "IRuntime::deserializeCudaEngine: Error Code 1:\n  Serialization (magic tag mismatch)")
    assert messages.suffix() == ": IRuntime::deserializeCudaEngine: Error Code 1: Serialization (magic tag mismatch)"


# -- paths that need cuda-python (installed by `make`), and no GPU: the errors must be one clear line ------
no_gpu = pytest.mark.skipif(cuda_device_count() > 0, reason="a GPU is present: the no-driver error paths differ")


def _cudart():
    try:
        from runtime import cudart as module
    except DeployError as e:
        pytest.skip(str(e))
    return module


@no_gpu
def test_cuda_call_without_driver_is_one_deploy_error():
    cudart_ = _cudart()
    with pytest.raises(DeployError, match=r"^CUDA error in cudaSetDevice\(0\): cudaError\w+ \(\d+\): [^\n]+$"):
        cudart_.set_device(0)


@no_gpu
def test_tensorrt_open_checks_cuda_versions_before_any_device_call():
    _cudart()
    from runtime.backends.tensorrt_backend import check_cuda_versions

    with pytest.raises(DeployError, match=r"^CUDA versions do not fit: driver \S+ \(CUDA -\), cuda-python's CUDA "
                                          r"runtime \d+\.\d+, TensorRT 10.13.0.35 .*no NVIDIA driver answered"):
        check_cuda_versions("10.13.0.35")


def test_pinned_buffer_frees_host_memory_when_the_device_allocation_fails(monkeypatch):
    cudart_ = _cudart()
    from runtime import cuda_memory

    freed = []
    monkeypatch.setattr(cudart_, "malloc_host", lambda n: 4096)

    def no_device_memory(n):
        raise DeployError("CUDA error in cudaMalloc(64): cudaErrorMemoryAllocation (2): out of memory")

    monkeypatch.setattr(cudart_, "malloc", no_device_memory)
    monkeypatch.setattr(cudart_, "free_host", freed.append)
    with pytest.raises(DeployError, match="cudaErrorMemoryAllocation"):
        cuda_memory.PinnedBuffer(64)
    assert freed == [4096]


# -- the TensorRT backend's CUDA-graph fallback and per-thread device, with TensorRT's context stood in ----
class _Context:
    """Stands in for trt.IExecutionContext: only what capture touches."""

    def __init__(self, enqueue_ok: bool) -> None:
        self.enqueue_ok = enqueue_ok

    def execute_async_v3(self, stream_handle: int) -> bool:
        return self.enqueue_ok


def _backend(monkeypatch, calls):
    cudart_ = _cudart()
    from runtime.backends.tensorrt_backend import TensorRTBackend

    backend = TensorRTBackend.__new__(TensorRTBackend)   # no engine: only the capture logic runs
    backend.path, backend.stream, backend.use_cuda_graph = "m.engine", 7, True
    backend.graph_exec, backend.messages = None, TrtMessages()
    for name, result in (("begin_capture", None), ("abandon_capture", "cudaErrorStreamCaptureUnsupported (900)"),
                         ("clear_error", None), ("end_capture", "graph-exec"), ("graph_exec_destroy", None)):
        monkeypatch.setattr(cudart_, name, lambda *a, _n=name, _r=result: calls.append(_n) or _r)
    return backend


def test_failed_capture_ends_it_clears_the_error_and_falls_back_with_one_warning(monkeypatch, caplog):
    calls: list[str] = []
    backend = _backend(monkeypatch, calls)
    with caplog.at_level(logging.WARNING, logger="effdet_deploy"):
        backend._capture(_Context(enqueue_ok=False))       # must not raise: the run's results are kept
    assert calls == ["begin_capture", "abandon_capture", "clear_error"]
    assert backend.graph_exec is None and backend.use_cuda_graph is False
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "cudaErrorStreamCaptureUnsupported" in warnings[0]


def test_capture_keeps_the_graph_and_a_shape_change_destroys_it(monkeypatch):
    calls: list[str] = []
    backend = _backend(monkeypatch, calls)
    backend._capture(_Context(enqueue_ok=True))
    assert backend.graph_exec == "graph-exec" and calls == ["begin_capture", "end_capture"]
    backend._drop_graph()
    assert backend.graph_exec is None and calls[-1] == "graph_exec_destroy"


def test_run_sets_the_device_on_the_calling_thread(monkeypatch):
    cudart_ = _cudart()
    from runtime.backends.tensorrt_backend import TensorRTBackend

    seen = []
    monkeypatch.setattr(cudart_, "set_device", lambda index: seen.append((threading.get_ident(), index)))
    backend = TensorRTBackend.__new__(TensorRTBackend)
    backend.path, backend.device_index, backend.context, backend.timer = "m.engine", 1, None, None
    errors = []

    def worker():
        try:
            backend.run(np.zeros((1, 3, 8, 8), np.float32))
        except DeployError as e:                         # closed backend: after the device was set
            errors.append(str(e))

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen == [(thread.ident, 1)] and "closed" in errors[0]

