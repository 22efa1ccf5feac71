"""TensorRT version differences, in one place. Everything else uses the name-based tensor API
(`num_io_tensors`, `set_tensor_address`, `set_input_shape`, `execute_async_v3`), present from 8.5 on.

- 8.6: networks need the EXPLICIT_BATCH flag; no STRONGLY_TYPED flag; parser errors have node() only. FP16 and
  Q/DQ files build weakly typed with the precision flags trtexec users pass, the file's FP32 layers pinned.
- 10.0+: EXPLICIT_BATCH deprecated (always on); STRONGLY_TYPED exists, and FP16 and Q/DQ files build with it
  (trtexec --stronglyTyped). The weak-typing precision flags and implicit INT8 calibrators still work for FP32
  files (deprecated from 10.1 / 10.12).
- 11.x: implicit INT8 calibrators and the weak-typing precision flags are gone; strongly typed only.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import numpy as np

from runtime.errors import DeployError

if TYPE_CHECKING:
    import tensorrt as trt_types

# Strong typing exists from 10.0 (NvInfer.h v10.0.0 NetworkDefinitionCreationFlag::kSTRONGLY_TYPED: "Every tensor
# in the network has a data type defined in the network following only type inference rules"; trtexec
# --stronglyTyped from samples/common/sampleOptions.cpp v10.0.0, which then disables --fp16/--int8). FP16 and Q/DQ
# files build strongly typed from there, so the engine computes the types the file has, as verified on CPU
# (ModelOpt's INT8 form, opset 19 with FP16 scales, is meant for exactly that build). 8.x has no strong typing:
# weakly typed with the flags trtexec users pass (--fp16, --int8) and the file's FP32 layers pinned.
STRONG_TYPING_FROM = (10, 0)
LEGACY_PRECISION_UNTIL = (11, 0)
TRT_INSTALL = ("pip install tensorrt-cu12 'cuda-python>=12.6.2,<13' (our [trt-cu12] extra; CUDA 13: tensorrt-cu13 "
               "'cuda-python>=13,<14'; on Jetson TensorRT comes with JetPack)")


def require_tensorrt() -> str:
    """TensorRT's version, or DeployError naming what to install. Callers then `import tensorrt as trt`
    locally, so mypy types every call from tensorrt-stubs (an accessor returning the module would be Any)."""
    try:
        import tensorrt as trt
    except ImportError as e:
        raise DeployError(f"this needs TensorRT ({e.msg}); install it: {TRT_INSTALL}") from None
    if "__version__" not in vars(trt):   # tensorrt-stubs alone: a namespace package without the library
        raise DeployError(f"this needs TensorRT, and only its type stubs are installed: {TRT_INSTALL}")
    return trt.__version__


def tensorrt_available() -> bool:
    """Whether the TensorRT library (not only its stubs) imports here; require_tensorrt() says why not."""
    try:
        require_tensorrt()
    except DeployError:
        return False
    return True


def version_tuple(version: str) -> tuple[int, int]:
    """'10.13.0.35' -> (10, 13)."""
    parts = (version.split(".") + ["0"])[:2]
    return int(parts[0]), int(parts[1])


class TensorRTFlags(Protocol):
    """What network_flags reads from the tensorrt module (a protocol, so calls stay typed from the stubs;
    mypy does not match a module's __version__ against a protocol, so that one is read with getattr)."""

    NetworkDefinitionCreationFlag: type[trt_types.NetworkDefinitionCreationFlag]


def network_flags(trt: TensorRTFlags, strongly_typed: bool) -> int:
    """Creation flags for builder.create_network(): EXPLICIT_BATCH before 10.0 (8.6 NvInfer.h), STRONGLY_TYPED
    on demand on 10.x (NvInfer.h v10.0); none on 11.x, where networks are always strongly typed and the flag is
    deprecated (NvInfer.h v11.1 NetworkDefinitionCreationFlag::kSTRONGLY_TYPED "always enabled")."""
    trt_version = str(getattr(trt, "__version__"))
    version = version_tuple(trt_version)
    if version >= LEGACY_PRECISION_UNTIL:
        return 0
    flags = 0
    if version < (10, 0):
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    if strongly_typed:
        if not hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
            raise DeployError(f"TensorRT {trt_version} has no strongly typed networks (needs 10.0+)")
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    return flags


def wants_strong_typing(trt_version: str, precision: str) -> bool:
    """FP16 and Q/DQ INT8 files build strongly typed from 10.0 (required from 11); FP32 files too on 11."""
    version = version_tuple(trt_version)
    if version >= LEGACY_PRECISION_UNTIL:
        return True
    return precision in ("fp16", "int8") and version >= STRONG_TYPING_FROM


def has_legacy_precision_flags(trt_version: str) -> bool:
    """Whether --fp16 / --int8 builder flags (weak typing, implicit calibration) still exist."""
    return version_tuple(trt_version) < LEGACY_PRECISION_UNTIL


def precision_builder_flags(trt_version: str, precision: str, has_qdq: bool) -> tuple[str, ...]:
    """BuilderFlag names a weakly typed build of this file needs so it runs the precision verified on CPU.

    - Q/DQ layers -> INT8: 8.6-10.11 build explicit quantization only with kINT8 set and no calibrator
      (trtexec samples/common/sampleEngines.cpp `hasQDQLayers`; Polygraphy backend/trt/config.py).
    - FP16 math in the file (fp16, and int8 whose unquantized layers are FP16) -> FP16: weak typing picks
      FP16 kernels only with kFP16 (TensorRT 8.6 NvInfer.h BuilderFlag::kFP16 "Enable FP16 layer selection").
      kFP16 lets the builder run *any* layer in FP16, so the layers the file computes in FP32 (FP32_OPS, the
      tail) are pinned there (engine_build._pin_fp32_layers) under kPREFER_PRECISION_CONSTRAINTS (8.6+,
      deprecated 10.12 with strong typing; Polygraphy --layer-precisions + --precision-constraints prefer).
    - 11.x: no such flags (removed from NvInfer.h v11.0; deprecated since 10.12): strongly typed only.
    """
    if not has_legacy_precision_flags(trt_version):
        return ()
    flags = ["FP16", PIN_FP32] if precision in ("fp16", "int8") else []
    return (*flags, "INT8") if has_qdq else tuple(flags)


PIN_FP32 = "PREFER_PRECISION_CONSTRAINTS"   # the builder flag that makes layer precisions count (8.6-10.x)


def strong_typing_available(trt_version: str) -> bool:
    """NetworkDefinitionCreationFlag.STRONGLY_TYPED exists from 10.0 (absent from 8.6's NvInfer.h)."""
    return version_tuple(trt_version) >= (10, 0)


def parser_error_text(error: trt_types.ParserError) -> str:
    """One line per parser error: node index, node name (10.0+), description."""
    name = error.node_name() if hasattr(error, "node_name") else ""
    return f"node {error.node()}{' ' + repr(name) if name else ''}: {error.desc()}"


# I/O tensor types numpy can hold, by DataType name (python/src/infer/pyFoundationalTypes.cpp: 8.6 has
# FLOAT HALF INT8 INT32 BOOL UINT8 FP8; 10.x/11.x add BF16 INT64 INT4 FP4 E8M0). The others have no numpy
# type: a view of their bytes as another type would be silently wrong, so such engines are refused.
NUMPY_DTYPES: dict[str, np.dtype] = {name: np.dtype(kind) for name, kind in (
    ("FLOAT", "float32"), ("HALF", "float16"), ("INT32", "int32"), ("INT64", "int64"), ("INT8", "int8"),
    ("UINT8", "uint8"), ("BOOL", "bool"))}


def numpy_dtype(type_name: str, tensor: str, engine: str) -> np.dtype:
    """numpy dtype of an engine I/O tensor from its DataType name ('FLOAT', 'HALF', ...); DeployError for
    BF16 / FP8 / INT4 / FP4 / E8M0 I/O, which numpy cannot hold."""
    if type_name not in NUMPY_DTYPES:
        raise DeployError(f"{engine}: I/O tensor '{tensor}' is {type_name}, which numpy has no type for; "
                          "rebuild the engine from an ONNX file whose inputs and outputs are FP32/FP16/INT32")
    return NUMPY_DTYPES[type_name]


def profile_batch_limits(static_shape: tuple[int, ...], profile: tuple[tuple[int, ...], ...] | None
                         ) -> tuple[int, int]:
    """(min, max) batch an engine input accepts: its static batch, else profile 0's MIN and MAX shapes
    (ICudaEngine.get_tensor_profile_shape returns [min, opt, max], 8.5+ through 11.x)."""
    if static_shape and static_shape[0] >= 0:
        return static_shape[0], static_shape[0]
    if not profile:
        raise DeployError(f"dynamic input {static_shape} without an optimization profile")
    return profile[0][0], profile[-1][0]


# Version-compatible engines (BuilderFlag.VERSION_COMPATIBLE, 8.6+) load on the TensorRT that built them and on
# later runtimes, never earlier ones, patch releases included (10.x developer guide, "Version Compatibility": "engines
# that are compatible with later TensorRT versions"; "built with a version at least 8.6 ... the runtime must be 8.6
# or higher"; 11.1 guide: a VC engine from 11.0 runs on "11.1 and later 11.x"). Across majors: "engines built with
# TensorRT 8 work with TensorRT 9 and TensorRT 10 runtimes", TensorRT 9 engines with 10 (10.x guide), and 10 -> 11;
# the TensorRT 11.4.1 support matrix ("Engine Portability") allows no other pair ("a TensorRT 8 engine cannot run
# with a TensorRT 11 runtime").
VERSION_COMPATIBLE_FROM = (8, 6)
VERSION_COMPATIBLE_ACROSS_MAJORS = {(8, 9), (8, 10), (9, 10), (10, 11)}


def release_tuple(version: str) -> tuple[int, int, int]:
    """'10.13.3.9' -> (10, 13, 3): the release, build number aside."""
    parts = (version.split(".") + ["0", "0"])[:3]
    return int(parts[0]), int(parts[1]), int(parts[2])


def loads_version_compatible(built: str, runtime: str) -> bool:
    """Whether a runtime of version `runtime` deserializes a version-compatible engine built by `built`."""
    b, r = release_tuple(built), release_tuple(runtime)
    if b[:2] < VERSION_COMPATIBLE_FROM or r < b:
        return False
    return b[0] == r[0] or (b[0], r[0]) in VERSION_COMPATIBLE_ACROSS_MAJORS


def loads_engine(built: str, runtime: str, version_compatible: bool) -> bool:
    """An engine loads on exactly the TensorRT that built it, or by the rule above when version-compatible."""
    return loads_version_compatible(built, runtime) if version_compatible else built == runtime


# CUDA majors. cuda-python's CUDA runtime needs a driver of at least its major (CUDA minor version
# compatibility covers the minors: CUDA Compatibility guide), and its major must equal the major the
# TensorRT wheel was built for (the -cu12 / -cu13 in the wheel's name, python/packaging in NVIDIA/TensorRT).
TRT_CUDA_DISTRIBUTIONS = {"tensorrt-cu13": 13, "tensorrt-cu13-bindings": 13, "tensorrt-cu12": 12,
                          "tensorrt-cu12-bindings": 12, "tensorrt-cu11": 11, "tensorrt-cu11-bindings": 11}


def tensorrt_cuda_major(installed: list[str]) -> int | None:
    """CUDA major of the installed TensorRT wheel from distribution names; None for a system TensorRT
    (JetPack, .deb/.tar installs), whose CUDA is the system's."""
    majors = {TRT_CUDA_DISTRIBUTIONS[n] for n in (name.lower().replace("_", "-") for name in installed)
              if n in TRT_CUDA_DISTRIBUTIONS}
    return majors.pop() if len(majors) == 1 else None


def cuda_text(version: int) -> str:
    """12080 -> '12.8' (cudaDriverGetVersion / cudaRuntimeGetVersion encoding: 1000*major + 10*minor)."""
    return f"{version // 1000}.{version % 1000 // 10}"


def cuda_mismatch(driver: str, driver_cuda: int, runtime_cuda: int, trt_version: str,
                  trt_cuda: int | None) -> str | None:
    """One line naming driver, CUDA runtime and TensorRT when they cannot work together, else None."""
    runtime_major = runtime_cuda // 1000
    problems = []
    if driver_cuda == 0:
        problems.append("no NVIDIA driver answered")
    elif driver_cuda // 1000 < runtime_major:
        problems.append(f"the driver supports CUDA {cuda_text(driver_cuda)} only")
    if trt_cuda is not None and trt_cuda != runtime_major:
        problems.append(f"TensorRT is built for CUDA {trt_cuda}")
    if not problems:
        return None
    want = trt_cuda or (driver_cuda // 1000 if driver_cuda else runtime_major)
    hint = f"pip install 'cuda-python>={'12.6.2' if want == 12 else want},<{want + 1}'"
    trt_side = f"TensorRT {trt_version} (CUDA {trt_cuda or 'of the system'})"
    return (f"CUDA versions do not fit: driver {driver} (CUDA {cuda_text(driver_cuda) if driver_cuda else '-'}), "
            f"cuda-python's CUDA runtime {cuda_text(runtime_cuda)}, {trt_side}: {'; '.join(problems)}; "
            f"use cuda-python {want}.x: {hint}")
