"""`quantize`: FP32 ONNX -> strongly typed FP16 ONNX, or Q/DQ INT8 ONNX calibrated on an image folder."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--onnx", type=Path, required=True, help="an FP32 file from `effdet-deploy export`")
    p.add_argument("--output", type=Path, required=True)
    p.add_argument("--precision", choices=("fp16", "int8"), required=True)
    p.add_argument("--calib-dir", type=Path, help="representative images (int8)")
    p.add_argument("--calib-images", type=int, default=500, help="images sampled from --calib-dir (fixed seed)")
    p.add_argument("--calib-batch", type=int, default=8)
    p.add_argument("--method", choices=("entropy", "max"), default="entropy")
    p.add_argument("--exclude", default="none", help="none | auto (measured sensitivity) | node,names")
    p.add_argument("--target", type=float, default=0.05, help="--exclude auto: accepted relative output error")
    p.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    from calibration.artifacts import QuantizeSettings, quantize_onnx

    quantize_onnx(QuantizeSettings(onnx=args.onnx, output=args.output, precision=args.precision,
                                   calib_dir=args.calib_dir, calib_images=args.calib_images,
                                   calib_batch=args.calib_batch, method=args.method, exclude=args.exclude,
                                   target=args.target, seed=args.seed))
    return 0
