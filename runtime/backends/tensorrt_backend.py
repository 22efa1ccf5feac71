"""TensorRT backend over cuda-python: one stream, pinned host buffers and device buffers allocated once
for the profile's largest batch and reused, name-based tensors (`set_tensor_address`,
`set_input_shape`, `execute_async_v3`: TensorRT 8.5+ through 11.x), optional CUDA graph capture,
CUDA-event phase timings.

Not re-entrant: the Detector serializes calls; use one Detector (one execution context) per thread for
parallel work. Every call sets the engine's device first: the current CUDA device belongs to the calling
host thread, not to the process. The engine's ModelInfo comes from its sidecar (`effdet-deploy build`).
"""
from __future__ import annotations

from contextlib import contextmanager
from importlib.metadata import distributions
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

import numpy as np

from runtime import cudart
from runtime.backends.base import Backend
from runtime.cuda_memory import EventTimer, PinnedBuffer, device_properties
from runtime.engine_sidecar import check_engine, read_sidecar
from runtime.errors import DeployError
from runtime.gpu import driver_release
from runtime.log import logger
from runtime.model_info import ModelInfo
from runtime.trt_compat import (cuda_mismatch, numpy_dtype, profile_batch_limits, require_tensorrt,
                                tensorrt_cuda_major)
from runtime.trt_messages import TrtMessages, register_plugins

if TYPE_CHECKING:
    import tensorrt as trt


def _device_index(device: str | None) -> int:
    """'cuda', 'cuda:1', '1' or None -> device index."""
    if device is None or device in ("cuda", "gpu"):
        return 0
    try:
        return int(device.split(":")[-1])
    except ValueError:
        raise DeployError(f"device '{device}' is not 'cuda' or 'cuda:N'") from None


def _dims(dims: trt.Dims) -> tuple[int, ...]:
    return tuple(dims[i] for i in range(len(dims)))


def _dla_core(sidecar: dict[str, object], path: Path) -> int | None:
    """The sidecar's dla_core (None: a GPU engine); anything but an int >= 0 is refused."""
    core = sidecar.get("dla_core")
    if core is not None and (type(core) is not int or core < 0):
        raise DeployError(f"{path}: sidecar dla_core {core!r} is not a DLA core number; rebuild the engine")
    return core


def check_cuda_versions(trt_version: str) -> None:
    """One line naming driver, CUDA runtime and TensorRT when their CUDA majors cannot work together
    (before the first cudaSetDevice, which would fail with a bare cudaErrorInsufficientDriver)."""
    names = [str(dist.metadata["Name"] or "") for dist in distributions()]   # None for a broken install
    problem = cuda_mismatch(driver_release(), cudart.driver_version(), cudart.runtime_version(), trt_version,
                            tensorrt_cuda_major(names))
    if problem:
        raise DeployError(problem)


class TensorRTBackend(Backend):
    name = "tensorrt"

    def __init__(self, path: str | Path, device: str | None = None, use_cuda_graph: bool = False) -> None:
        self.use_cuda_graph = use_cuda_graph
        self.last_gpu_ms: dict[str, float] = {}
        self.buffers: dict[str, PinnedBuffer] = {}
        self.dtypes: dict[str, np.dtype] = {}
        self.device_index = _device_index(device)
        self.messages = TrtMessages()
        self.runtime: trt.Runtime | None = None
        self.engine: trt.ICudaEngine | None = None
        self.context: trt.IExecutionContext | None = None
        self.stream = 0
        self.timer: EventTimer | None = None
        self.graph_exec: cudart.GraphExec | None = None
        self.shape: tuple[int, ...] = ()
        super().__init__(path, device)

    @contextmanager
    def _trt_errors(self) -> Iterator[None]:
        """TensorRT's Python exceptions as one DeployError line naming the engine and TensorRT's last error."""
        try:
            yield
        except (RuntimeError, TypeError, ValueError) as e:
            text = " ".join(str(e).split())
            raise DeployError(f"{self.path}: TensorRT: {text}{self.messages.suffix()}") from None

    def open(self) -> ModelInfo:
        trt_version = require_tensorrt()
        sidecar = read_sidecar(self.path)
        check_cuda_versions(trt_version)
        cudart.set_device(self.device_index)
        gpu, cc = device_properties(self.device_index)
        check_engine(self.path, sidecar, trt_version, gpu, cc)
        try:
            with self._trt_errors():
                self._load(trt_version, bool(sidecar.get("version_compatible")), _dla_core(sidecar, self.path))
        except BaseException:
            self.close()
            raise
        return ModelInfo.from_metadata(sidecar["onnx_metadata"], str(self.path))

    def _load(self, trt_version: str, version_compatible: bool, dla_core: int | None) -> None:
        import tensorrt as trt

        logger_ = self.messages.trt_logger()
        if not register_plugins():   # EfficientNMS_TRT lives there (8.6-11.x)
            logger.warning("TensorRT could not register its plugins (see the log file)")
        self.runtime = trt.Runtime(logger_)   # kept alive while the engine lives (IRuntime docs, 8.6-11.x)
        if dla_core is not None:
            # the DLA core the engine was built for, before deserializing (IRuntime::setDLACore, default -1;
            # trtexec sampleEngines.cpp LazilyDeserializedEngine does the same, v8.6.1-v10.13.0)
            self.runtime.DLA_core = dla_core
        if version_compatible:
            # VC engines embed the lean runtime (host code), refused unless allowed (IRuntime::
            # setEngineHostCodeAllowed, 8.6+; trtexec sampleEngines.cpp, Polygraphy EngineFromBytes do this)
            self.runtime.engine_host_code_allowed = True
        # None on failure, the reason goes to the logger (pyCore.cpp deserialize_cuda_engine, 8.6.1/10.13/11.1)
        engine: trt.ICudaEngine | None = self.runtime.deserialize_cuda_engine(self.path.read_bytes())
        if engine is None:
            raise DeployError(f"{self.path}: TensorRT {trt_version} could not deserialize it"
                              f"{self.messages.suffix() or ' (damaged file?)'}")
        self.engine = engine
        context: trt.IExecutionContext | None = engine.create_execution_context()
        if context is None:   # out of device memory, typically (returns nullptr: NvInferRuntime.h 8.6-11.x)
            raise DeployError(f"{self.path}: TensorRT could not create an execution context{self.messages.suffix()}")
        self.context = context
        self.stream = cudart.stream_create()
        # name-based I/O API: num_io_tensors / get_tensor_name / _mode / _dtype (8.5+, unchanged in 10.x/11.x)
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        self.inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if n not in self.inputs]
        self.dtypes = {n: numpy_dtype(engine.get_tensor_dtype(n).name, n, str(self.path)) for n in names}
        self._allocate(engine, context)
        self.timer = EventTimer()

    def _allocate(self, engine: trt.ICudaEngine, context: trt.IExecutionContext) -> None:
        """Buffers for the largest batch profile 0 accepts, bound once with set_tensor_address."""
        name = self.inputs[0]
        shape = _dims(engine.get_tensor_shape(name))
        profile = None
        if -1 in shape:   # [min, opt, max] of profile 0 (pyCore.cpp get_tensor_profile_shape, 8.6.1-11.1)
            profile = tuple(_dims(d) for d in engine.get_tensor_profile_shape(name, 0))
        self.batch_range = profile_batch_limits(shape, profile)
        self.max_shape = profile[-1] if profile else shape
        # tuple -> Dims by pybind (8.6: implicitly_convertible<vector<int32_t>, Dims>; 10.x/11.x: tuple overload)
        if not context.set_input_shape(name, self.max_shape):
            raise DeployError(f"{self.path}: TensorRT rejected input shape {self.max_shape}{self.messages.suffix()}")
        for tensor in self.inputs + self.outputs:
            dims = _dims(context.get_tensor_shape(tensor))   # resolved for the input shape just set
            if min(dims, default=0) < 0:
                raise DeployError(f"{self.path}: output '{tensor}' has a data-dependent shape {dims}; "
                                  "export with fixed-size outputs (every --nms mode does)")
            self.buffers[tensor] = PinnedBuffer(int(np.prod(dims)) * self.dtypes[tensor].itemsize)
            # device address as int (pyCore.cpp set_tensor_address(size_t), 8.6.1-11.1); False if refused
            if not context.set_tensor_address(tensor, self.buffers[tensor].device_ptr):
                raise DeployError(f"{self.path}: TensorRT refused the address of '{tensor}'{self.messages.suffix()}")
        self.shape = self.max_shape

    def batch_limits(self) -> tuple[int, int]:
        """(min, max) batch of the engine's optimization profile, which may differ from the ONNX metadata."""
        return self.batch_range

    def _live(self) -> trt.IExecutionContext:
        if self.context is None or self.timer is None:
            raise DeployError(f"{self.path}: this TensorRT backend is closed")
        return self.context

    def _set_shape(self, context: trt.IExecutionContext, shape: tuple[int, ...]) -> None:
        if shape == self.shape:
            return
        lo, hi = self.batch_range
        if len(shape) != len(self.max_shape) or not lo <= shape[0] <= hi or shape[1:] != self.max_shape[1:]:
            raise DeployError(f"{self.path}: input {shape} does not fit the engine (batch {lo}..{hi} of "
                              f"{self.max_shape[1:]})")
        self._drop_graph()                              # a graph replays the shapes it was captured with
        if not context.set_input_shape(self.inputs[0], shape):
            raise DeployError(f"{self.path}: TensorRT rejected input shape {shape}{self.messages.suffix()}")
        self.shape = shape

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        cudart.set_device(self.device_index)           # this thread's current device (per host thread)
        context = self._live()
        with self._trt_errors():
            results = self._run(context, batch)
        if self.use_cuda_graph and self.graph_exec is None:
            self._capture(context)                     # never raises: the results above are kept
        return results

    def _run(self, context: trt.IExecutionContext, batch: np.ndarray) -> dict[str, np.ndarray]:
        assert self.timer is not None
        name = self.inputs[0]
        self._set_shape(context, tuple(batch.shape))
        buf = self.buffers[name]
        staged = buf.host_array(batch.shape, self.dtypes[name])
        staged[...] = batch                                  # cast to the engine's input type if it differs
        self.timer.mark(0, self.stream)
        buf.to_device(staged.nbytes, self.stream)
        self.timer.mark(1, self.stream)
        self._enqueue(context)
        self.timer.mark(2, self.stream)
        results = {}
        for out in self.outputs:
            dims = _dims(context.get_tensor_shape(out))
            self.buffers[out].to_host(int(np.prod(dims)) * self.dtypes[out].itemsize, self.stream)
            results[out] = self.buffers[out].host_array(dims, self.dtypes[out])
        self.timer.mark(3, self.stream)
        cudart.stream_synchronize(self.stream)
        self.last_gpu_ms = self.timer.elapsed()
        return {k: v.copy() for k, v in results.items()}  # buffers are reused by the next call

    def _enqueue(self, context: trt.IExecutionContext) -> None:
        if self.graph_exec is not None:
            cudart.graph_launch(self.graph_exec, self.stream)
        # stream as its native handle int (pyCore.cpp execute_async_v3(size_t streamHandle), 8.6.1-11.1)
        elif not context.execute_async_v3(self.stream):
            raise DeployError(f"{self.path}: TensorRT's execute_async_v3 failed{self.messages.suffix()}")

    def _capture(self, context: trt.IExecutionContext) -> None:
        """Record one enqueue as a CUDA graph, after a normal run at this shape (TensorRT finishes its lazy
        setup in the first enqueue). If TensorRT cannot be captured: end the capture, clear the error, warn
        once and run normally from then on, as trtexec does (samples/common/sampleInference.cpp)."""
        try:
            cudart.begin_capture(self.stream)
            error = ""
            try:
                enqueued = context.execute_async_v3(self.stream)
            except (RuntimeError, TypeError) as e:
                enqueued, error = False, " ".join(str(e).split())
            if not enqueued:
                cuda_error = cudart.abandon_capture(self.stream)
                raise DeployError(f"{error or cuda_error}{self.messages.suffix()}")
            self.graph_exec = cudart.end_capture(self.stream)
        except DeployError as e:
            cudart.clear_error()
            self.use_cuda_graph = False
            logger.warning(f"{self.path}: CUDA graph capture failed ({e}); running without CUDA graphs")

    def _drop_graph(self) -> None:
        graph_exec, self.graph_exec = self.graph_exec, None
        if graph_exec is not None:
            cudart.graph_exec_destroy(graph_exec)

    def io_tensors(self) -> list[tuple[str, str, tuple[int, ...], str]]:
        """(name, 'input'/'output', shape with -1 where dynamic, numpy dtype) per I/O tensor, in engine order
        (`build --loadEngine` lists them; ICudaEngine.get_tensor_shape, 8.5-11.x)."""
        engine = self.engine
        if engine is None:
            raise DeployError(f"{self.path}: the engine is closed")
        return [(n, "input" if n in self.inputs else "output", _dims(engine.get_tensor_shape(n)),
                 str(self.dtypes[n])) for n in self.inputs + self.outputs]

    def layer_information(self) -> str:
        """The engine's layers as TensorRT's JSON (IEngineInspector.get_engine_information, 8.2+ through 11.x; the
        same text trtexec --exportLayerInfo writes): with per-layer formats only for engines built with
        detailed profiling verbosity."""
        import tensorrt as trt

        if self.engine is None or self.context is None:
            raise DeployError(f"{self.path}: not open")
        inspector = self.engine.create_engine_inspector()
        inspector.execution_context = self.context          # as Polygraphy does: shapes of this context
        return str(inspector.get_engine_information(trt.LayerInformationFormat.JSON))

    def close(self) -> None:
        """Free graph, buffers, events, stream, context, engine (idempotent; on the engine's device)."""
        errors: list[DeployError] = []
        steps: list[Callable[[], None]] = [lambda: cudart.set_device(self.device_index), self._drop_graph, self._free_buffers]
        if self.timer is not None:
            steps.append(self.timer.destroy)
        if self.stream:
            steps.append(lambda: cudart.stream_destroy(self.stream))
        for step in steps:
            try:
                step()
            except DeployError as e:
                errors.append(e)
        self.timer, self.stream = None, 0
        self.context = self.engine = self.runtime = None   # context before engine before runtime
        if errors:
            raise errors[0]

    def _free_buffers(self) -> None:
        buffers, self.buffers = self.buffers, {}
        for buf in buffers.values():
            buf.free()
