"""`build`: ONNX -> TensorRT engine + sidecar, with trtexec's flag names: --saveEngine, --memPoolSize, --shapes,
--best and --verbose as trtexec reads them (export/trtexec_flags.py); --loadEngine inspects and verifies an
existing engine instead (effdet_deploy/engine_check.py)."""
from __future__ import annotations

import argparse
from pathlib import Path

from export.build_plan import (BuildSettings, OnnxInput, build_precision, calibration_shape, check_min_tensorrt,
                               onnx_input, parse_shapes, profile_shapes)
from export.engine_build import engine_from_onnx
from export.trtexec_flags import merge_inference_shapes, parse_mem_pool_size, resolve_best
from runtime.errors import DeployError
from runtime.trt_compat import require_tensorrt


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--onnx", default=None, help="the ONNX file to build (or --loadEngine to inspect an engine)")
    p.add_argument("--engine", "--saveEngine", dest="engine", default=None, help="default: the ONNX path with .engine")
    p.add_argument("--loadEngine", "--load-engine", dest="load_engine", default=None, metavar="ENGINE",
                   help="inspect and verify an existing engine instead of building: its sidecar, size and sha256; "
                        "with TensorRT and a GPU, deserialize it and list its inputs and outputs")
    p.add_argument("--minShapes", "--min-shapes", dest="min_shapes", default=None, help="e.g. images:1x3x512x512")
    p.add_argument("--optShapes", "--opt-shapes", dest="opt_shapes", default=None)
    p.add_argument("--maxShapes", "--max-shapes", dest="max_shapes", default=None)
    p.add_argument("--workspace", type=int, default=None, help="workspace pool limit in MiB")
    p.add_argument("--memPoolSize", "--mem-pool-size", dest="mem_pool_size", default=None, metavar="workspace:N",
                   help="trtexec syntax: workspace:N with unit B, K, M, G, MiB or GiB (no unit: MiB) = --workspace")
    p.add_argument("--shapes", default=None, metavar="NAME:AxBxCxD",
                   help="trtexec's inference shapes: an input without --minShapes/--optShapes/--maxShapes gets a "
                        "profile of exactly this shape; with a profile it must lie inside it")
    p.add_argument("--best", action="store_true",
                   help="trtexec --best: --fp16 --int8 where the build is weakly typed (INT8 only with Q/DQ or "
                        "--calib-cache); a strongly typed build takes precision from the file and says so")
    p.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                   help="debug logging (as effdet-deploy -v build)")
    p.add_argument("--timing-cache", "--timingCacheFile", dest="timing_cache", default=None)
    p.add_argument("--builder-optimization-level", "--builderOptimizationLevel", dest="opt_level", type=int,
                   default=None, choices=range(0, 6))
    p.add_argument("--dla-core", "--useDLACore", dest="dla_core", type=int, default=None)
    p.add_argument("--version-compatible", "--versionCompatible", dest="version_compatible", action="store_true")
    p.add_argument("--strongly-typed", "--stronglyTyped", dest="strongly_typed", action=argparse.BooleanOptionalAction,
                   default=None, help="default: from the file's precision and the TensorRT version")
    p.add_argument("--fp16", action="store_true", help="legacy weak typing (TensorRT < 11)")
    p.add_argument("--int8", action="store_true",
                   help="TensorRT < 11: Q/DQ files get it automatically; on an FP32 file: legacy calibration, "
                        "needs --calib-cache")
    p.add_argument("--calib-cache", "--calib", dest="calib_cache", default=None)
    p.add_argument("--calib-dir", default=None, help="images to create --calib-cache from")
    p.add_argument("--calib-images", type=int, default=500)
    p.add_argument("--calib-batch", type=int, default=None,
                   help="default: the input's batch (static, or the profile's OPT): what TensorRT reads per batch")
    p.add_argument("--method", choices=("entropy", "minmax"), default="entropy")
    p.add_argument("--profiling-verbosity", "--profilingVerbosity", dest="profiling_verbosity",
                   choices=("layer_names_only", "detailed"), default="layer_names_only",
                   help="detailed: the engine records each layer's precision and formats (trtexec --dumpLayerInfo, "
                        "Polygraphy inspect model --show layers)")


class BuildArgs(argparse.Namespace):
    """The parsed flags, typed (argparse.Namespace attributes are Any to mypy)."""
    onnx: str
    engine: str | None
    mem_pool_size: str | None
    shapes: str | None
    best: bool
    min_shapes: str | None
    opt_shapes: str | None
    max_shapes: str | None
    workspace: int | None
    timing_cache: str | None
    opt_level: int | None
    dla_core: int | None
    version_compatible: bool
    strongly_typed: bool | None
    fp16: bool
    int8: bool
    calib_cache: str | None
    calib_dir: str | None
    calib_images: int
    calib_batch: int | None
    profiling_verbosity: str
    method: str


def _optional_path(text: str | None) -> Path | None:
    return Path(text) if text else None


def settings_from(args: BuildArgs) -> BuildSettings:
    onnx = Path(args.onnx)
    min_shapes, opt_shapes, max_shapes = merge_inference_shapes(
        parse_shapes(args.shapes), parse_shapes(args.min_shapes), parse_shapes(args.opt_shapes),
        parse_shapes(args.max_shapes))
    if args.mem_pool_size is not None and args.workspace is not None:
        raise DeployError("--memPoolSize=workspace:N and --workspace N set the same limit; give one")
    workspace = parse_mem_pool_size(args.mem_pool_size) if args.mem_pool_size is not None else args.workspace
    return BuildSettings(
        onnx=onnx, engine=Path(args.engine) if args.engine else onnx.with_suffix(".engine"),
        min_shapes=min_shapes, opt_shapes=opt_shapes, max_shapes=max_shapes, workspace_mib=workspace, best=args.best,
        timing_cache=_optional_path(args.timing_cache), optimization_level=args.opt_level,
        dla_core=args.dla_core, version_compatible=args.version_compatible, fp16=args.fp16, int8=args.int8,
        calib_cache=_optional_path(args.calib_cache), calib_dir=_optional_path(args.calib_dir),
        calib_images=args.calib_images, calib_batch=args.calib_batch, calib_method=args.method,
        strongly_typed=args.strongly_typed, detailed_profiling=args.profiling_verbosity == "detailed")


def run(args: argparse.Namespace) -> int:
    if (args.onnx is None) == (args.load_engine is None):
        raise DeployError("give --onnx FILE (build an engine) or --loadEngine ENGINE (inspect one), one of the two")
    check_counts(BuildArgs(**vars(args)))
    if args.load_engine is not None:
        from effdet_deploy.engine_check import inspect_engine

        return inspect_engine(Path(args.load_engine))
    settings = settings_from(BuildArgs(**vars(args)))
    inp = onnx_input(settings.onnx)
    if settings.best:               # what --best means depends on the file and the TensorRT version
        settings = resolve_best(settings, inp.meta.get("precision", "fp32"), require_tensorrt(), inp.has_qdq)
    if not needs_calibrator(settings, inp.has_qdq):
        print(f"wrote {engine_from_onnx(settings)}")
        return 0
    check_before_calibrating(settings, inp, require_tensorrt())           # TensorRT missing, or 11+: one line, no calibration
    from calibration.legacy import calibration_from_images   # TensorRT's calibrator classes: legacy INT8 only

    shape = calibration_shape(settings, inp.dims, profile_shapes(settings, inp.name, inp.dims, inp.meta))
    assert settings.calib_cache is not None
    with calibration_from_images(settings.calib_cache, settings.calib_dir, inp.meta, str(settings.onnx), shape,
                                 inp.name, settings.calib_images, settings.calib_method) as calibration:
        print(f"wrote {engine_from_onnx(settings, calibration)}")
    return 0


def check_counts(args: BuildArgs) -> None:
    """Sizes and counts, before TensorRT is looked for: `--workspace -1` was answered "this needs TensorRT" here
    and reached set_memory_pool_limit on a machine with it; `--workspace 0` was dropped without a word."""
    for flag, value, least in (("--workspace", args.workspace, 1), ("--dla-core", args.dla_core, 0),
                               ("--calib-images", args.calib_images, 1), ("--calib-batch", args.calib_batch, 1)):
        if value is not None and value < least:
            raise DeployError(f"{flag} must be at least {least}, got {value}"
                              + (" (MiB; leave it out for TensorRT's default)" if flag == "--workspace" else ""))


def needs_calibrator(s: BuildSettings, has_qdq: bool) -> bool:
    """Legacy implicit INT8: --int8 --calib-cache on a file without Q/DQ (with Q/DQ the build refuses them)."""
    return s.int8 and s.calib_cache is not None and not has_qdq


def check_before_calibrating(s: BuildSettings, inp: OnnxInput, trt_version: str) -> None:
    """The build's own precision checks (export/build_plan.py build_precision), run before the calibrator
    is made and images are read: TensorRT 11 has no --int8 flag nor calibrator classes to make. Batches are
    served in the metadata's input_dtype (calibration/feeder.py image_feed), so it must be the graph's."""
    check_min_tensorrt(s, inp.meta, trt_version)
    build_precision(s, inp.meta.get("precision", "fp32"), trt_version, inp.has_qdq)
    stated = inp.meta.get("input_dtype", "float32")
    if stated != inp.dtype:
        raise DeployError(f"{s.onnx}: its metadata says input_dtype {stated}, but input '{inp.name}' is {inp.dtype}; "
                          "calibration would feed TensorRT the wrong bytes: re-export the file")
