"""`engine_from_onnx`: ONNX -> serialized TensorRT engine + JSON sidecar, the trtexec way.

Precision follows the file: FP16 and Q/DQ INT8 files build strongly typed on TensorRT >= 10.0 (and
everything on 11), so the engine runs exactly the precision verified on CPU; on 8.6 they build weakly typed
with the builder flags the file needs (FP16; INT8 for Q/DQ, no calibrator) and the layers the file computes
in FP32 pinned there, the trtexec/Polygraphy way; a build that cannot pin them is refused. Legacy implicit INT8 (`--int8 --calib-cache` on an
FP32 file) takes a calibrator from the caller (calibration/legacy.py): engine building sits below calibration
and never imports it. What to build (settings, shapes, precision mode) is decided in export/build_plan.py.
"""
from __future__ import annotations

import time
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from runtime.atomic import write_atomic
from runtime.errors import DeployError
from runtime.log import logger
from export.build_plan import (BuildSettings, OnnxInput, Profile, build_precision, calibration_shape,
                               check_min_tensorrt, check_pinnable, check_version_compatible, conv_free_nodes,
                               describe_precision, form_advice, fp32_node_count, onnx_input, pins_tail_only,
                               profile_shapes)
from runtime.trt_compat import PIN_FP32, network_flags, parser_error_text, require_tensorrt

if TYPE_CHECKING:
    import tensorrt as trt

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


def _pin_fp32_layers(network: trt.INetworkDefinition, s: BuildSettings, fp32_nodes: int | None,
                     tail_only: bool) -> int:
    """Weakly typed build of an FP16/INT8 file: kFP16 lets TensorRT run any layer in FP16, so every layer the
    file computes in FP32 (_computes_fp32: FP32_OPS such as the squeeze-excite ReduceMean, the heads' reshapes,
    the whole tail with its TopKs, NMS and threshold comparisons; with tail_only the tail's alone) is asked to
    stay FP32, as a strongly typed build would keep it (Polygraphy --layer-precisions; honoured under
    kPREFER_PRECISION_CONSTRAINTS). Casts, Q/DQ, constants and shape layers keep their own typing rules.
    ILayer.precision / ITensor.dtype / ITensor.name / LayerType: pyGraph.cpp v8.6.1-v10.13.0. build_plan.
    check_pinnable refuses the build when TensorRT's FP32 layers do not fit the file's FP32 nodes. Returns how
    many layers were pinned (recorded in the sidecar)."""
    import tensorrt as trt

    own_rules = {trt.LayerType.CONSTANT, trt.LayerType.SHAPE, trt.LayerType.CAST, trt.LayerType.IDENTITY,
                 trt.LayerType.QUANTIZE, trt.LayerType.DEQUANTIZE}
    layers = [network.get_layer(i) for i in range(network.num_layers)]
    scope = conv_free_nodes([_names(layer) for layer in layers]) if tail_only else set(range(len(layers)))
    fp32 = [layer for i, layer in enumerate(layers)
            if i in scope and layer.type not in own_rules and _computes_fp32(layer)]
    check_pinnable(s, len(fp32), len(layers), fp32_nodes, trt.__version__)
    for layer in fp32:
        layer.precision = trt.float32
    logger.info(f"weakly typed: {len(fp32)} layers the file computes in FP32 stay FP32 ({fp32_nodes} FP32 nodes"
                f"{' in the tail' if tail_only else ''})")
    return len(fp32)


def _names(layer: trt.ILayer) -> tuple[bool, list[str], list[str]]:
    """(is a convolution, input tensor names, output tensor names): conv_free_nodes' view of a layer."""
    import tensorrt as trt

    inputs = [layer.get_input(j) for j in range(layer.num_inputs)]
    outputs = [layer.get_output(j) for j in range(layer.num_outputs)]
    return (layer.type == trt.LayerType.CONVOLUTION, [t.name for t in inputs if t is not None],
            [t.name for t in outputs if t is not None])


def _computes_fp32(layer: trt.ILayer) -> bool:
    """At least one floating-point input or output, all of them FP32 (integer and bool tensors aside: TopK's
    indices, INMSLayer's output and comparisons' results must not keep those layers out); fp32_node_count's
    rule for ONNX nodes."""
    import tensorrt as trt

    tensors = [layer.get_input(j) for j in range(layer.num_inputs)]
    tensors += [layer.get_output(j) for j in range(layer.num_outputs)]
    kinds = [t.dtype for t in tensors if t is not None and t.dtype in (trt.float32, trt.float16)]
    return bool(kinds) and all(kind == trt.float32 for kind in kinds)


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
    if s.detailed_profiling:   # IEngineInspector then reports each layer's formats (pyCore.cpp v8.6.1-v11.1)
        config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
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
        logger.warning(f"{path.name}: {len(problems) - 3} more: effdet-deploy lint {path} --trt-version {trt_version}")


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
    check_min_tensorrt(s, inp.meta, trt.__version__)
    strong, flags = build_precision(s, precision, trt.__version__, inp.has_qdq)
    advice = form_advice(inp.meta, trt.__version__, strong)
    if advice:
        logger.warning(f"{s.onnx.name}: {advice}")
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
    if s.mark_outputs:                            # a layer-wise engine for compare --layers (Polygraphy's marking)
        from export.layer_marks import mark_outputs

        logger.info(f"{mark_outputs(network, s.mark_outputs)} intermediate tensors marked as engine outputs")
    pinned = 0
    if PIN_FP32 in flags and precision in ("fp16", "int8"):   # the file's FP16 typing to keep (not DLA's flag alone)
        from export.onnx_io import read_onnx

        tail_only = pins_tail_only(inp.meta)
        pinned = _pin_fp32_layers(network, s, fp32_node_count(read_onnx(s.onnx, weights=False), tail_only), tail_only)
    config = builder.create_builder_config()      # IBuilderConfig, 8.6-11.x (trtexec sampleEngines.cpp)
    _configure(builder, config, s, flags)
    cache = _timing_cache(config, s.timing_cache)
    shapes = profile_shapes(s, inp.name, inp.dims, inp.meta)
    if shapes is not None:
        _add_profile(builder, config, inp.name, shapes, calibration=False)
    if "INT8" in flags and not inp.has_qdq:
        _legacy_int8(config, builder, inp, s, shapes, calibration)
    logger.info(f"building {s.engine.name} on {gpu} (sm {cc}), TensorRT {trt.__version__}, "
                f"{describe_precision(strong, flags)} ...")
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
    write_sidecar(s.engine, {**_sidecar(s, inp, shapes, trt.__version__, gpu, cc, strong, flags),
                             "fp32_layers_pinned": pinned})
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
