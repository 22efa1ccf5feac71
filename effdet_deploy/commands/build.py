"""`build`: ONNX -> TensorRT engine + sidecar, with trtexec's flag names."""
from __future__ import annotations

import argparse
from pathlib import Path


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
    p.add_argument("--int8", action="store_true", help="legacy implicit INT8 (TensorRT < 11), needs --calib-cache")
    p.add_argument("--calib-cache", "--calib", dest="calib_cache", default=None)
    p.add_argument("--calib-dir", default=None, help="images to create --calib-cache from")
    p.add_argument("--calib-images", type=int, default=500)
    p.add_argument("--calib-batch", type=int, default=8)
    p.add_argument("--method", choices=("entropy", "minmax"), default="entropy")


def run(args: argparse.Namespace) -> int:
    from export.engine_build import BuildSettings, engine_from_onnx, parse_shapes

    onnx = Path(args.onnx)
    settings = BuildSettings(
        onnx=onnx, engine=Path(args.engine) if args.engine else onnx.with_suffix(".engine"),
        min_shapes=parse_shapes(args.min_shapes), opt_shapes=parse_shapes(args.opt_shapes),
        max_shapes=parse_shapes(args.max_shapes), workspace_mib=args.workspace,
        timing_cache=Path(args.timing_cache) if args.timing_cache else None, optimization_level=args.opt_level,
        dla_core=args.dla_core, version_compatible=args.version_compatible, fp16=args.fp16, int8=args.int8,
        calib_cache=Path(args.calib_cache) if args.calib_cache else None,
        calib_dir=Path(args.calib_dir) if args.calib_dir else None, calib_images=args.calib_images,
        calib_batch=args.calib_batch, calib_method=args.method, strongly_typed=args.strongly_typed)
    print(f"wrote {engine_from_onnx(settings)}")
    return 0
