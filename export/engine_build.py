"""`engine_from_onnx`: ONNX -> serialized TensorRT engine + JSON sidecar, the trtexec way.

Precision follows the file: FP16 and Q/DQ INT8 files build strongly typed on TensorRT >= 10.12 (and
everything on 11), so the engine runs exactly the precision verified on CPU; on older TensorRT the
`--fp16` / `--int8 --calib-cache` builder flags (weak typing, implicit calibration) are the path.
Shapes come from trtexec-style flags or from the file's dynamic-batch metadata.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from runtime.atomic import write_atomic
from runtime.errors import DeployError
from runtime.log import logger
from runtime.trt_compat import (has_legacy_precision_flags, network_flags, parser_error_text, tensorrt,
                                wants_strong_typing)

Shapes = dict[str, tuple[int, ...]]


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
    calib_batch: int = 8
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


def onnx_input(path: Path) -> tuple[str, tuple[int, ...], dict[str, str]]:
    """(input name, dims with -1 for dynamic ones, metadata_props) of an ONNX file, without its weights."""
    from export.onnx_io import metadata_of, read_onnx

    proto = read_onnx(path, weights=False)
    graph_input = proto.graph.input[0]
    dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in graph_input.type.tensor_type.shape.dim)
    return graph_input.name, dims, metadata_of(proto)


def profile_shapes(s: BuildSettings, name: str, dims: tuple[int, ...], meta: dict[str, str]
                   ) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]] | None:
    """(min, opt, max) for a dynamic input: the flags, else the file's dynamic-batch metadata; None if static."""
    if -1 not in dims:
        return None
    if name in s.min_shapes or name in s.opt_shapes or name in s.max_shapes:
        missing = [k for k, v in (("--minShapes", s.min_shapes), ("--optShapes", s.opt_shapes),
                                  ("--maxShapes", s.max_shapes)) if name not in v]
        if missing:
            raise DeployError(f"{s.onnx}: give {', '.join(missing)} for '{name}' as well")
        return s.min_shapes[name], s.opt_shapes[name], s.max_shapes[name]
    batch = meta.get("batch", "")
    if not batch.startswith("dynamic:") or dims.count(-1) != 1 or dims[0] != -1:
        raise DeployError(f"{s.onnx}: input '{name}' {dims} is dynamic; give --minShapes/--optShapes/--maxShapes")
    lo, opt, hi = (int(v) for v in batch[len("dynamic:"):].split(","))
    rest = dims[1:]
    return (lo, *rest), (opt, *rest), (hi, *rest)


def build_precision(s: BuildSettings, file_precision: str, trt_version: str) -> tuple[bool, list[str]]:
    """(strongly typed?, legacy builder flags to set) for this file on this TensorRT."""
    strong = s.strongly_typed if s.strongly_typed is not None else wants_strong_typing(trt_version, file_precision)
    flags = [f for f, on in (("FP16", s.fp16), ("INT8", s.int8)) if on]
    if strong and flags:
        raise DeployError(f"--{'/--'.join(f.lower() for f in flags)} are weak-typing flags; this build is strongly "
                          f"typed (file precision {file_precision}, TensorRT {trt_version}): precision comes from "
                          "the file (effdet-deploy quantize)")
    if flags and not has_legacy_precision_flags(trt_version):
        raise DeployError(f"TensorRT {trt_version} has no --fp16/--int8 builder flags; use an FP16 or INT8 ONNX")
    if s.int8 and s.calib_cache is None:
        raise DeployError("--int8 needs --calib-cache (with --calib-dir to create it), or use an INT8 Q/DQ ONNX")
    if s.int8 and s.calib_dir is None and s.calib_cache is not None and not s.calib_cache.is_file():
        raise DeployError(f"{s.calib_cache}: no calibration cache yet; give --calib-dir to calibrate")
    return strong, flags


def _parse(trt: Any, network: Any, trt_logger: Any, s: BuildSettings) -> None:
    parser = trt.OnnxParser(network, trt_logger)
    if not parser.parse_from_file(str(s.onnx)):
        lines = [parser_error_text(parser.get_error(i)) for i in range(parser.num_errors)]
        raise DeployError(f"{s.onnx}: TensorRT's ONNX parser failed:\n  " + "\n  ".join(lines))


def _configure(trt: Any, builder: Any, config: Any, s: BuildSettings, flags: list[str], meta: dict[str, str]) -> Any:
    """Workspace, optimization level, DLA, version compatibility, legacy precision, timing cache."""
    if s.workspace_mib:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, s.workspace_mib << 20)
    if s.optimization_level is not None:
        config.builder_optimization_level = s.optimization_level
    if s.dla_core is not None:
        if builder.num_DLA_cores <= s.dla_core:
            raise DeployError(f"--dla-core {s.dla_core}: this device has {builder.num_DLA_cores} DLA cores")
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = s.dla_core
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    if s.version_compatible:
        config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
    for flag in flags:
        config.set_flag(getattr(trt.BuilderFlag, flag))
    if "INT8" in flags and s.calib_cache is not None:
        config.int8_calibrator = _legacy_calibrator(s, meta)
    cache = None
    if s.timing_cache is not None:
        data = s.timing_cache.read_bytes() if s.timing_cache.is_file() else b""
        cache = config.create_timing_cache(data)
        config.set_timing_cache(cache, False)
    return cache


def _legacy_calibrator(s: BuildSettings, meta: dict[str, str]) -> Any:
    """Replay the cache, or calibrate on --calib-dir through the runtime's preprocessing and write it."""
    from calibration.legacy import cache_only_calibrator, image_calibrator
    from runtime.model_info import ModelInfo

    assert s.calib_cache is not None
    if s.calib_dir is None:
        return cache_only_calibrator(s.calib_cache, s.calib_method)
    from calibration.images import CalibrationImages

    images = CalibrationImages(s.calib_dir, ModelInfo.from_metadata(meta, str(s.onnx)), s.calib_images, s.calib_batch)
    return image_calibrator(images.batches(), s.calib_batch, s.calib_cache, s.calib_method)


def engine_from_onnx(s: BuildSettings) -> Path:
    """Build and write s.engine (atomically) and its sidecar; returns the engine path."""
    from runtime.cuda_memory import device_properties
    from runtime.engine_sidecar import write_sidecar

    name, dims, meta = onnx_input(s.onnx)
    trt = tensorrt()
    strong, flags = build_precision(s, meta.get("precision", "fp32"), trt.__version__)
    gpu, cc = device_properties(0)
    trt_logger = trt.Logger(trt.Logger.WARNING)
    trt.init_libnvinfer_plugins(trt_logger, "")
    builder = trt.Builder(trt_logger)
    network = builder.create_network(network_flags(trt, strong))
    _parse(trt, network, trt_logger, s)
    config = builder.create_builder_config()
    cache = _configure(trt, builder, config, s, flags, meta)
    shapes = profile_shapes(s, name, dims, meta)
    if shapes is not None:
        profile = builder.create_optimization_profile()
        profile.set_shape(name, *shapes)
        config.add_optimization_profile(profile)
    logger.info(f"building {s.engine.name} on {gpu} (sm {cc}), TensorRT {trt.__version__}, "
                f"{'strongly typed' if strong else 'weakly typed ' + ('+'.join(flags) or 'FP32')} ...")
    t0 = time.perf_counter()
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise DeployError(f"{s.onnx}: TensorRT could not build an engine (see the TensorRT messages above)")
    write_atomic(s.engine, memoryview(plan).tobytes())
    if cache is not None and s.timing_cache is not None:
        write_atomic(s.timing_cache, memoryview(config.get_timing_cache().serialize()).tobytes())
    write_sidecar(s.engine, {
        "tensorrt_version": trt.__version__, "gpu_name": gpu, "compute_capability": cc,
        "precision": meta.get("precision", "fp32"), "strongly_typed": strong, "builder_flags": flags,
        "shapes": {name: list(shapes) if shapes else list(dims)}, "version_compatible": s.version_compatible,
        "dla_core": s.dla_core, "onnx": s.onnx.name, "onnx_metadata": meta,
        "settings": json.loads(json.dumps(asdict(s), default=str)),
    })
    logger.info(f"wrote {s.engine} in {time.perf_counter() - t0:.0f}s")
    return s.engine

