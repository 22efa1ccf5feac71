"""`engine_from_onnx`: ONNX -> serialized TensorRT engine + JSON sidecar, the trtexec way.

Precision follows the file: FP16 and Q/DQ INT8 files build strongly typed on TensorRT >= 10.12 (and
everything on 11), so the engine runs exactly the precision verified on CPU; on 8.6-10.11 they build weakly
typed with the builder flags the file needs (FP16; INT8 for Q/DQ, no calibrator), the trtexec/Polygraphy
way. Legacy implicit INT8 (`--int8 --calib-cache` on an FP32 file) takes a calibrator from the caller
(calibration/legacy.py): engine building sits below calibration and never imports it.
Shapes come from trtexec-style flags or from the file's dynamic-batch metadata.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from runtime.atomic import write_atomic
from runtime.errors import DeployError
from runtime.log import logger
from runtime.model_info import DYNAMIC_BATCH, batch_profile
from runtime.trt_compat import (PIN_FP32, has_legacy_precision_flags, network_flags, parser_error_text,
                                precision_builder_flags, require_tensorrt, strong_typing_available,
                                wants_strong_typing)

if TYPE_CHECKING:
    import tensorrt as trt

Shapes = dict[str, tuple[int, ...]]
Profile = tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]   # (min, opt, max)


@dataclass(frozen=True)
class BuildSettings:
    onnx: Path
    engine: Path
    min_shapes: Shapes = field(default_factory=dict)   # trtexec --minShapes images:1x3x512x512
    opt_shapes: Shapes = field(default_factory=dict)
    max_shapes: Shapes = field(default_factory=dict)
    workspace_mib: int | None = None
    timing_cache: Path | None = None
    optimization_level: int | None = None              # 0-5, TensorRT's default 3
    dla_core: int | None = None                        # with GPU fallback
    version_compatible: bool = False
    fp16: bool = False                                 # legacy (weakly typed) precision flags
    int8: bool = False
    calib_cache: Path | None = None
    calib_dir: Path | None = None                      # legacy INT8: calibrate on these images, write the cache
    calib_images: int = 500
    calib_batch: int | None = None                     # None: the input's batch (static, or the profile's OPT)
    calib_method: str = "entropy"                      # entropy | minmax
    strongly_typed: bool | None = None                 # None: from the file's precision and TensorRT version


def parse_shapes(text: str | None) -> Shapes:
    """trtexec syntax 'images:1x3x512x512[,other:...]' -> {'images': (1, 3, 512, 512)}."""
    shapes: Shapes = {}
    for item in filter(None, (text or "").split(",")):
        name, sep, dims = item.rpartition(":")
        try:
            shapes[name.strip("'\"")] = tuple(int(d) for d in dims.split("x"))
        except ValueError:
            raise DeployError(f"shape '{item}' is not NAME:AxBxC (trtexec syntax)") from None
        if not sep or not name or any(d <= 0 for d in shapes[name.strip("'\"")]):
            raise DeployError(f"shape '{item}' is not NAME:AxBxC with positive sizes")
    return shapes


@dataclass(frozen=True)
class OnnxInput:
    """What the build reads from the ONNX file before TensorRT sees it."""
    name: str
    dims: tuple[int, ...]          # -1 for dynamic dimensions
    meta: dict[str, str]           # metadata_props
    has_qdq: bool                  # QuantizeLinear/DequantizeLinear present (onnx-tensorrt imports them as Q/DQ layers)
    plugins: tuple[str, ...] = ()  # TensorRT plugin ops in the graph (EfficientNMS_TRT)
    dtype: str = "float32"         # the input's element type as numpy names it (uint8 for --input-dtype uint8)


QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})


def onnx_input(path: Path) -> OnnxInput:
    """The first input's name and dims, metadata_props and whether the graph is Q/DQ, without its weights."""
    from onnx import helper

    from export.onnx_io import metadata_of, read_onnx

    proto = read_onnx(path, weights=False)
    graph_input = proto.graph.input[0]
    dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in graph_input.type.tensor_type.shape.dim)
    has_qdq = any(node.op_type in QDQ_OPS for node in proto.graph.node)
    plugins = tuple(sorted({node.op_type for node in proto.graph.node if node.op_type.endswith("_TRT")}))
    dtype = str(helper.tensor_dtype_to_np_dtype(graph_input.type.tensor_type.elem_type))
    return OnnxInput(graph_input.name, dims, metadata_of(proto), has_qdq, plugins, dtype)


def check_version_compatible(s: BuildSettings, inp: OnnxInput) -> None:
    """--version-compatible with a plugin op is refused: a version-compatible plan can only carry plugin libraries
    built for it (entry points getCreators/setLoggerFinder: TensorRT plugin/vc/vfcCommon.cpp, v8.6-v11.1), and the
    only such library TensorRT ships, nvinfer_vc_plugin, holds ROIAlign alone (plugin/CMakeLists.txt
    add_vc_plugin_source; onnx-tensorrt reports it for ROIAlign only). EfficientNMS_TRT lives in libnvinfer_plugin."""
    if s.version_compatible and inp.plugins:
        raise DeployError(f"{s.onnx}: --version-compatible engines cannot carry the {', '.join(inp.plugins)} plugin "
                          "(not in TensorRT's version-compatible plugin library); export with --nms onnx")


def profile_shapes(s: BuildSettings, name: str, dims: tuple[int, ...], meta: dict[str, str]
                   ) -> Profile | None:
    """(min, opt, max) for a dynamic input: the flags, else the file's dynamic-batch metadata; None if static."""
    if -1 not in dims:
        given = {v[name] for v in (s.min_shapes, s.opt_shapes, s.max_shapes) if name in v}
        if given - {dims}:
            raise DeployError(f"{s.onnx}: input '{name}' is static {dims}; shapes {sorted(given)} do not apply "
                              "(drop --minShapes/--optShapes/--maxShapes)")
        return None
    if name in s.min_shapes or name in s.opt_shapes or name in s.max_shapes:
        missing = [k for k, v in (("--minShapes", s.min_shapes), ("--optShapes", s.opt_shapes),
                                  ("--maxShapes", s.max_shapes)) if name not in v]
        if missing:
            raise DeployError(f"{s.onnx}: give {', '.join(missing)} for '{name}' as well")
        return check_profile(s.onnx, name, dims, (s.min_shapes[name], s.opt_shapes[name], s.max_shapes[name]))
    batch = meta.get("batch", "")
    if not batch.startswith(DYNAMIC_BATCH) or dims.count(-1) != 1 or dims[0] != -1:
        raise DeployError(f"{s.onnx}: input '{name}' {dims} is dynamic; give --minShapes/--optShapes/--maxShapes")
    lo, opt, hi = batch_profile(batch)
    rest = dims[1:]
    return (lo, *rest), (opt, *rest), (hi, *rest)


def check_profile(onnx: Path, name: str, dims: tuple[int, ...], shapes: Profile) -> Profile:
    """min <= opt <= max per dimension, each of the input's rank and equal to its static dimensions: TensorRT's
    IOptimizationProfile.set_shape raises a bare RuntimeError otherwise (pyCore.cpp PY_ASSERT_RUNTIME_ERROR,
    8.6.1-11.1)."""
    for label, shape in zip(("min", "opt", "max"), shapes):
        if len(shape) != len(dims) or any(d not in (-1, v) for d, v in zip(dims, shape)):
            raise DeployError(f"{onnx}: {label} shape {shape} does not fit input '{name}' {dims}")
    if not all(lo <= opt <= hi for lo, opt, hi in zip(*shapes)):
        raise DeployError(f"{onnx}: input '{name}' needs min <= opt <= max in every dimension, got "
                          f"{shapes[0]}, {shapes[1]}, {shapes[2]}")
    return shapes


def calibration_shape(s: BuildSettings, dims: tuple[int, ...],
                      shapes: Profile | None) -> tuple[int, ...]:
    """The input shape a legacy calibrator serves per batch: TensorRT reads the static shape, or the
    calibration profile's OPT shape (NvInfer.h setCalibrationProfile: "MIN and MAX values will be overwritten
    by kOPT"); --calib-batch picks another batch inside the profile, never one TensorRT would read differently."""
    if shapes is None:
        if s.calib_batch is not None and s.calib_batch != dims[0]:
            raise DeployError(f"{s.onnx}: --calib-batch {s.calib_batch}, but the input has a static batch of "
                              f"{dims[0]} and TensorRT calibrates with exactly that")
        return dims
    lo, opt, hi = shapes
    if s.calib_batch is None:
        return opt
    if not lo[0] <= s.calib_batch <= hi[0]:
        raise DeployError(f"{s.onnx}: --calib-batch {s.calib_batch} is outside the profile's batch {lo[0]}..{hi[0]}")
    return (s.calib_batch, *opt[1:])


def build_precision(s: BuildSettings, file_precision: str, trt_version: str,
                    has_qdq: bool = False) -> tuple[bool, list[str]]:
    """(strongly typed?, builder flags to set) for this file on this TensorRT (flags: runtime/trt_compat.py)."""
    strong = s.strongly_typed if s.strongly_typed is not None else wants_strong_typing(trt_version, file_precision)
    if strong and not strong_typing_available(trt_version):
        raise DeployError(f"TensorRT {trt_version} has no strongly typed networks (10.0+); drop --strongly-typed")
    user = [f for f, on in (("FP16", s.fp16), ("INT8", s.int8)) if on]
    named = "/".join(f"--{f.lower()}" for f in user)
    if user and not has_legacy_precision_flags(trt_version):
        raise DeployError(f"TensorRT {trt_version} has no {named} builder flag{'s' * (len(user) > 1)} (removed in 11.0); "
                          "use an FP16 or INT8 ONNX (effdet-deploy quantize)")
    if strong and user:
        raise DeployError(f"{named} {'are weak-typing flags' if len(user) > 1 else 'is a weak-typing flag'}; this "
                          f"build is strongly typed (file precision {file_precision}, TensorRT {trt_version}): "
                          "precision comes from the file (effdet-deploy quantize)")
    if s.int8 and has_qdq and (s.calib_cache is not None or s.calib_dir is not None):
        raise DeployError(f"{s.onnx} is already quantized (Q/DQ): TensorRT uses its scales and no calibrator; "
                          "drop --calib-cache/--calib-dir")
    if s.int8 and not has_qdq and s.calib_cache is None:
        raise DeployError("--int8 on a file without Q/DQ needs --calib-cache (with --calib-dir to create it), "
                          "or use an INT8 Q/DQ ONNX (effdet-deploy quantize)")
    if s.int8 and s.calib_dir is None and s.calib_cache is not None and not s.calib_cache.is_file():
        raise DeployError(f"{s.calib_cache}: no calibration cache yet; give --calib-dir to calibrate")
    if s.strongly_typed is False and not has_legacy_precision_flags(trt_version):
        raise DeployError(f"TensorRT {trt_version} builds strongly typed networks only (NvInfer.h v11.0); "
                          "drop --no-strongly-typed")
    if strong:
        if s.dla_core is not None and file_precision == "fp32":
            raise DeployError(f"--dla-core: DLA runs FP16 and INT8 layers only, and this strongly typed build of an "
                              f"FP32 file (TensorRT {trt_version}) would put every layer on the GPU; build from an "
                              "FP16 or INT8 file (effdet-deploy quantize)")
        return True, []
    needed = precision_builder_flags(trt_version, file_precision, has_qdq)
    flags: list[str] = [f for f in ("FP16", "INT8") if f in needed or f in user]
    if s.dla_core is not None:
        # trtexec setupNetworkAndConfig (sampleEngines.cpp v8.6.1-v10.13.0): with a DLA core it sets
        # kPREFER_PRECISION_CONSTRAINTS, and kFP16 unless INT8: DLA has no FP32, FP32 layers would fall back to the GPU
        flags += [] if "INT8" in flags or "FP16" in flags else ["FP16"]
    if PIN_FP32 in needed or s.dla_core is not None:
        flags.append(PIN_FP32)
    return False, flags


class Calibration(Protocol):
    """A legacy INT8 calibration handed in by the caller (calibration/legacy.py's LegacyCalibration)."""

    @property
    def calibrator(self) -> trt.IInt8Calibrator: ...

    @property
    def shape(self) -> tuple[int, ...]: ...

    def raise_kept(self) -> None: ...


def _parse(network: trt.INetworkDefinition, trt_logger: trt.ILogger, s: BuildSettings) -> None:
    import tensorrt as trt

    parser = trt.OnnxParser(network, trt_logger)       # nvonnxparser: same Python API 8.6-11.x
    if not parser.parse_from_file(str(s.onnx)):
        lines = [parser_error_text(parser.get_error(i)) for i in range(parser.num_errors)]
        raise DeployError(f"{s.onnx}: TensorRT's ONNX parser failed: " + "; ".join(lines))


def _pin_fp32_layers(network: trt.INetworkDefinition) -> int:
    """Weakly typed build of an FP16/INT8 file: kFP16 lets TensorRT run any layer in FP16, so every layer whose
    outputs the file types FP32 (FP32_OPS such as the squeeze-excite ReduceMean, the heads' reshapes, the tail)
    is asked to stay FP32, as a strongly typed build would keep it (Polygraphy --layer-precisions; honoured under
    kPREFER_PRECISION_CONSTRAINTS). Casts, Q/DQ, constants and shape layers keep their own typing rules.
    ILayer.precision / ITensor.dtype / LayerType: pyGraph.cpp v8.6.1-v10.13.0 (setPrecision deprecated 10.12,
    where these files build strongly typed instead). Returns how many layers were pinned."""
    import tensorrt as trt

    own_rules = {trt.LayerType.CONSTANT, trt.LayerType.SHAPE, trt.LayerType.CAST, trt.LayerType.IDENTITY,
                 trt.LayerType.QUANTIZE, trt.LayerType.DEQUANTIZE}
    pinned = 0
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        outputs = [layer.get_output(j) for j in range(layer.num_outputs)]
        if layer.type in own_rules or not outputs or any(t.dtype != trt.float32 for t in outputs):
            continue
        layer.precision = trt.float32
        pinned += 1
    return pinned


class PrecisionFlags(Protocol):
    """The BuilderFlag members build_precision may name: they exist 8.6-10.x and are gone from 11.x's Python
    BuilderFlag (pyCore.cpp v11.1), so each is read only when asked for, never all up front."""
    FP16: trt.BuilderFlag
    INT8: trt.BuilderFlag
    PREFER_PRECISION_CONSTRAINTS: trt.BuilderFlag


def precision_flags(members: PrecisionFlags, names: list[str]) -> list[trt.BuilderFlag]:
    """BuilderFlag values for build_precision's names, looked up one by one (11.x builds ask for none)."""
    flags = []
    for name in names:
        if name == "FP16":
            flags.append(members.FP16)
        elif name == "INT8":
            flags.append(members.INT8)
        elif name == PIN_FP32:
            flags.append(members.PREFER_PRECISION_CONSTRAINTS)
        else:
            raise ValueError(f"no builder flag {name!r}")
    return flags


def _configure(builder: trt.Builder, config: trt.IBuilderConfig, s: BuildSettings, flags: list[str]) -> None:
    """Workspace, optimization level, DLA, version compatibility, precision flags (Python API, 8.6-11.x)."""
    import tensorrt as trt

    if s.workspace_mib:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, s.workspace_mib << 20)   # 8.4+
    if s.optimization_level is not None:
        config.builder_optimization_level = s.optimization_level                          # 8.6+
    if s.dla_core is not None:
        if builder.num_DLA_cores <= s.dla_core:
            raise DeployError(f"--dla-core {s.dla_core}: this device has {builder.num_DLA_cores} DLA cores")
        # trtexec sampleEngines.cpp setupNetworkAndConfig: DLA device, core, GPU_FALLBACK (+ FP16/precision
        # constraints: build_precision)
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = s.dla_core
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    if s.version_compatible:
        config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)   # 8.6+ (trtexec --versionCompatible)
    for flag in precision_flags(trt.BuilderFlag, flags):
        config.set_flag(flag)


def _add_profile(builder: trt.Builder, config: trt.IBuilderConfig, name: str,
                 shapes: Profile, calibration: bool) -> None:
    """One optimization profile (min, opt, max); as the calibration profile too when `calibration`."""
    import tensorrt as trt

    profile = builder.create_optimization_profile()   # IOptimizationProfile::setDimensions, 8.6-11.x
    profile.set_shape(name, trt.Dims(list(shapes[0])), trt.Dims(list(shapes[1])), trt.Dims(list(shapes[2])))
    if calibration:
        # trtexec sampleEngines.cpp (--calibProfile): MIN = OPT = MAX = the calibration shape
        if not config.set_calibration_profile(profile):
            raise DeployError(f"TensorRT refused the calibration profile {name}:{shapes[1]}")
    elif config.add_optimization_profile(profile) < 0:      # -1 when invalid (IBuilderConfig docs)
        raise DeployError(f"TensorRT refused the profile {name}: min {shapes[0]}, opt {shapes[1]}, max {shapes[2]}")


def _timing_cache(config: trt.IBuilderConfig, path: Path | None) -> trt.ITimingCache | None:
    """Load (or start) the timing cache; setTimingCache returns false on a mismatching cache (NvInfer.h 8.6-11)."""
    if path is None:
        return None
    cache = config.create_timing_cache(path.read_bytes() if path.is_file() else b"")   # b"": a new cache
    if cache is None or not config.set_timing_cache(cache, False):
        raise DeployError(f"{path}: TensorRT did not accept this timing cache (another TensorRT version or GPU?); "
                          "delete it to start a new one")
    return cache


def _legacy_int8(config: trt.IBuilderConfig, builder: trt.Builder, inp: OnnxInput, s: BuildSettings,
                 shapes: Profile | None, calibration: Calibration | None) -> None:
    """Implicit INT8 on a file without Q/DQ: the caller's calibrator, sized like TensorRT reads it."""
    if calibration is None:
        raise DeployError(f"{s.onnx}: --int8 on a file without Q/DQ needs a calibrator (effdet-deploy build "
                          "makes one from --calib-cache/--calib-dir)")
    expected = calibration_shape(s, inp.dims, shapes)
    if tuple(calibration.shape) != expected:
        raise DeployError(f"calibrator serves {calibration.shape}, TensorRT will read {expected} per batch")
    config.int8_calibrator = calibration.calibrator   # deprecated 10.1, gone in 11 (NvInfer.h)
    if shapes is not None:
        _add_profile(builder, config, inp.name, (expected, expected, expected), calibration=True)


def _warn_lint(path: Path, trt_version: str) -> None:
    """What export/lint.py finds for this TensorRT's parser, as warnings before TensorRT's own errors."""
    from export.lint import lint
    from export.onnx_io import read_onnx

    try:
        problems = lint(read_onnx(path), trt_version)
    except ValueError:              # a TensorRT older than the lint's table (8.6)
        return
    for problem in problems[:3]:
        logger.warning(f"{path.name}: {problem}")
    if len(problems) > 3:
        logger.warning(f"{path.name}: {len(problems) - 3} more: python -m export.lint {path} --trt-version {trt_version}")


def engine_from_onnx(s: BuildSettings, calibration: Calibration | None = None) -> Path:
    """Build and write s.engine (atomically) and its sidecar; returns the engine path."""
    from runtime.backends.tensorrt_backend import check_cuda_versions
    from runtime.cuda_memory import device_properties
    from runtime.engine_sidecar import write_sidecar
    from runtime.trt_messages import TrtMessages, register_plugins

    inp = onnx_input(s.onnx)
    check_version_compatible(s, inp)
    require_tensorrt()              # one clear DeployError when TensorRT is missing (or only its stubs)
    import tensorrt as trt

    precision = inp.meta.get("precision", "fp32")
    strong, flags = build_precision(s, precision, trt.__version__, inp.has_qdq)
    _warn_lint(s.onnx, trt.__version__)
    check_cuda_versions(trt.__version__)          # one line before cudaSetDevice's bare error (runtime does the same)
    gpu, cc = device_properties(0)
    messages = TrtMessages()                      # TensorRT's errors, for one-line DeployErrors
    trt_logger = messages.trt_logger()
    register_plugins()                            # EfficientNMS_TRT, with the process-wide plugin logger
    try:
        builder = trt.Builder(trt_logger)         # pybind raises TypeError when createInferBuilder returns null
    except TypeError:
        raise DeployError(f"TensorRT could not create a builder{messages.suffix() or ' (no usable GPU?)'}") from None
    network = builder.create_network(network_flags(trt, strong))   # flags per version: runtime/trt_compat.py
    _parse(network, trt_logger, s)
    if PIN_FP32 in flags and precision in ("fp16", "int8"):
        logger.info(f"weakly typed: {_pin_fp32_layers(network)} layers the file computes in FP32 stay FP32")
    config = builder.create_builder_config()      # IBuilderConfig, 8.6-11.x (trtexec sampleEngines.cpp)
    _configure(builder, config, s, flags)
    cache = _timing_cache(config, s.timing_cache)
    shapes = profile_shapes(s, inp.name, inp.dims, inp.meta)
    if shapes is not None:
        _add_profile(builder, config, inp.name, shapes, calibration=False)
    if "INT8" in flags and not inp.has_qdq:
        _legacy_int8(config, builder, inp, s, shapes, calibration)
    logger.info(f"building {s.engine.name} on {gpu} (sm {cc}), TensorRT {trt.__version__}, "
                f"{'strongly typed' if strong else 'weakly typed ' + ('+'.join(flags) or 'FP32')} ...")
    t0 = time.perf_counter()
    plan = builder.build_serialized_network(network, config)   # None on failure (8.6-11.x Python API)
    if calibration is not None:
        calibration.raise_kept()    # what the calibrator raised inside TensorRT (its trampoline swallows it)
    if plan is None:
        raise DeployError(f"{s.onnx}: TensorRT could not build an engine{messages.suffix() or ' (no reason logged)'}")
    write_atomic(s.engine, memoryview(plan).tobytes())
    if cache is not None and s.timing_cache is not None:
        # ITimingCache::serialize, 8.6-11.x (trtexec sampleEngines.cpp: updateTimingCacheFile after the build)
        write_atomic(s.timing_cache, memoryview(config.get_timing_cache().serialize()).tobytes())
    write_sidecar(s.engine, _sidecar(s, inp, shapes, trt.__version__, gpu, cc, strong, flags))
    logger.info(f"wrote {s.engine} in {time.perf_counter() - t0:.0f}s")
    return s.engine


def _sidecar(s: BuildSettings, inp: OnnxInput, shapes: Profile | None, version: str,
             gpu: str, cc: str, strong: bool, flags: list[str]) -> dict[str, object]:
    settings = {f.name: _jsonable(getattr(s, f.name)) for f in fields(s)}
    return {"tensorrt_version": version, "gpu_name": gpu, "compute_capability": cc,
            "precision": inp.meta.get("precision", "fp32"), "strongly_typed": strong, "builder_flags": flags,
            "shapes": {inp.name: list(shapes) if shapes else list(inp.dims)}, "version_compatible": s.version_compatible,
            "dla_core": s.dla_core, "onnx": s.onnx.name, "onnx_metadata": inp.meta, "settings": settings}


def _jsonable(value: object) -> object:
    """A BuildSettings value as JSON: paths as strings, shapes as lists."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): list(v) if isinstance(v, tuple) else v for k, v in value.items()}
    return value
