"""TensorRT version differences, in one place. Everything else uses the name-based tensor API
(`num_io_tensors`, `set_tensor_address`, `set_input_shape`, `execute_async_v3`), present from 8.5 on.

- 8.6: networks need the EXPLICIT_BATCH flag; no STRONGLY_TYPED flag; parser errors have node() only.
- 10.0-10.11: EXPLICIT_BATCH deprecated (always on); STRONGLY_TYPED exists; FP16/INT8 builder flags and
  implicit INT8 calibrators still work (deprecated from 10.1 / 10.12).
- 10.12+: precision belongs in the graph: strongly typed networks for FP16 and Q/DQ files.
- 11.x: implicit INT8 calibrators and the weak-typing precision flags are gone; strongly typed only.
"""
from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from runtime.lazy import lazy_import

STRONG_TYPING_FROM = (10, 12)   # our policy: below this, build weakly typed with builder flags
LEGACY_PRECISION_UNTIL = (11, 0)


def tensorrt() -> ModuleType:
    """The tensorrt module; DeployError when missing (tensorrt-stubs alone is a namespace without code)."""
    module = lazy_import("tensorrt", "tensorrt (from NVIDIA; JetPack ships it)")
    if not hasattr(module, "__version__"):
        from runtime.errors import DeployError

        raise DeployError("this needs TensorRT, and only its type stubs are installed: pip install tensorrt "
                          "(on Jetson: it comes with JetPack)")
    return module


def version_tuple(version: str) -> tuple[int, int]:
    """'10.13.0.35' -> (10, 13)."""
    parts = (version.split(".") + ["0"])[:2]
    return int(parts[0]), int(parts[1])


def network_flags(trt: Any, strongly_typed: bool) -> int:
    """Creation flags for builder.create_network(): EXPLICIT_BATCH before 10.0, STRONGLY_TYPED on demand."""
    version = version_tuple(trt.__version__)
    flags = 0
    if version < (10, 0):
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    if strongly_typed:
        if not hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
            raise RuntimeError(f"TensorRT {trt.__version__} has no strongly typed networks (needs 10.0+)")
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    return flags


def wants_strong_typing(trt_version: str, precision: str) -> bool:
    """FP16 and Q/DQ INT8 files build strongly typed from 10.12 (required from 11); FP32 too on 11."""
    version = version_tuple(trt_version)
    if version >= LEGACY_PRECISION_UNTIL:
        return True
    return precision in ("fp16", "int8") and version >= STRONG_TYPING_FROM


def has_legacy_precision_flags(trt_version: str) -> bool:
    """Whether --fp16 / --int8 builder flags (weak typing, implicit calibration) still exist."""
    return version_tuple(trt_version) < LEGACY_PRECISION_UNTIL


def parser_error_text(error: Any) -> str:
    """One line per parser error: node index, node name (10.0+), description."""
    name = error.node_name() if hasattr(error, "node_name") else ""
    return f"node {error.node()}{' ' + repr(name) if name else ''}: {error.desc()}"


NUMPY_DTYPES = {"FLOAT": np.float32, "HALF": np.float16, "INT32": np.int32, "INT64": np.int64, "INT8": np.int8,
                "UINT8": np.uint8, "BOOL": np.bool_, "BF16": np.float32}


def numpy_dtype(trt_dtype: Any) -> Any:
    """TensorRT DataType -> numpy dtype (by enum name, stable across versions)."""
    name = getattr(trt_dtype, "name", str(trt_dtype).split(".")[-1])
    if name not in NUMPY_DTYPES:
        raise TypeError(f"TensorRT tensor type {name} has no numpy counterpart here")
    return NUMPY_DTYPES[name]


def cuda_runtime() -> ModuleType:
    """cuda-python's runtime module: `cuda.bindings.runtime` (12.6+), else the older `cuda.cudart`."""
    try:
        return lazy_import("cuda.bindings.runtime", "cuda-python")
    except Exception:
        return lazy_import("cuda.cudart", "cuda-python")
