"""`build`: ONNX -> TensorRT engine + sidecar, with trtexec's flag names."""
from __future__ import annotations

import argparse
from pathlib import Path

from export.build_plan import (BuildSettings, OnnxInput, build_precision, calibration_shape, check_min_tensorrt,
                               onnx_input, parse_shapes, profile_shapes)
from export.engine_build import engine_from_onnx
from runtime.errors import DeployError
from runtime.trt_compat import require_tensorrt


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--onnx", required=True)
    p.add_argument("--engine", default=None, help="default: the ONNX path with .engine")
    p.add_argument("--minShapes", "--min-shapes", dest="min_shapes", default=None, help="e.g. images:1x3x512x512")
    p.add_argument("--optShapes", "--opt-shapes", dest="opt_shapes", default=None)
    p.add_argument("--maxShapes", "--max-shapes", dest="max_shapes", default=None)
    p.add_argument("--workspace", type=int, default=None, help="workspace pool limit in MiB")
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
    return BuildSettings(
        onnx=onnx, engine=Path(args.engine) if args.engine else onnx.with_suffix(".engine"),
        min_shapes=parse_shapes(args.min_shapes), opt_shapes=parse_shapes(args.opt_shapes),
        max_shapes=parse_shapes(args.max_shapes), workspace_mib=args.workspace,
        timing_cache=_optional_path(args.timing_cache), optimization_level=args.opt_level,
        dla_core=args.dla_core, version_compatible=args.version_compatible, fp16=args.fp16, int8=args.int8,
        calib_cache=_optional_path(args.calib_cache), calib_dir=_optional_path(args.calib_dir),
        calib_images=args.calib_images, calib_batch=args.calib_batch, calib_method=args.method,
        strongly_typed=args.strongly_typed, detailed_profiling=args.profiling_verbosity == "detailed")


def run(args: argparse.Namespace) -> int:
    settings = settings_from(BuildArgs(**vars(args)))
    inp = onnx_input(settings.onnx)
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
