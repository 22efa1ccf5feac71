"""`quantize`: FP32 ONNX -> strongly typed FP16 ONNX, or Q/DQ INT8 ONNX calibrated on an image folder.
Our progress on the console; ModelOpt's and ONNX Runtime's output in OUTPUT.log (-v: live too). Ctrl-C leaves
neither OUTPUT.log nor temporary files."""
from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path

from runtime.errors import DeployError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--onnx", type=Path, required=True, help="an FP32 file from `effdet-deploy export`")
    p.add_argument("--output", type=Path, required=True)
    p.add_argument("--precision", choices=("fp16", "int8"), required=True)
    p.add_argument("--calib-dir", type=Path, help="representative images (int8)")
    p.add_argument("--calib-images", type=int, default=500, help="images sampled from --calib-dir (fixed seed)")
    p.add_argument("--calib-batch", type=int, default=8)
    p.add_argument("--method", choices=("mixed", "entropy", "max"), default="mixed",
                   help="mixed: entropy calibration, per tensor the best of entropy/percentile/max/clip-grid "
                        "ranges, then conv bias correction")
    p.add_argument("--exclude", default="default",
                   help="default (measured: the box head and the squeeze-excite gates) | none | "
                        "auto (measured search) | node,names | @FILE (from compare --layers --suggest-exclude FILE)")
    p.add_argument("--target", type=float, default=0.05, help="--exclude auto: accepted relative output error")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--trt-version", default="10.0",
                   help="int8: the TensorRT the file is for. 10.0 and later (default): ModelOpt's form (opset 19, FP16 "
                        "scales; trtexec --stronglyTyped); 8.6: FP32 math at opset 17 (trtexec --int8 --fp16)")


def run(args: argparse.Namespace) -> int:
    from calibration.artifacts import QuantizeSettings, check, quantize_onnx
    from effdet_deploy.console import log_path_for, third_party_to_log
    from effdet_deploy.interrupt_cleanup import private_tempdir

    settings = QuantizeSettings(onnx=args.onnx, output=args.output, precision=args.precision,
                                calib_dir=args.calib_dir, calib_images=args.calib_images, calib_batch=args.calib_batch,
                                method=args.method, exclude=args.exclude, target=args.target, seed=args.seed,
                                trt_version=args.trt_version)
    default = {f.name: f.default for f in fields(QuantizeSettings)}
    int8_only = [f"--{name.replace('_', '-')}" for name in ("calib_dir", "method", "exclude", "trt_version")
                 if getattr(settings, name) != default[name]]
    if args.precision == "fp16" and int8_only:
        raise DeployError(f"{', '.join(int8_only)}: INT8 calibration flags, not used by --precision fp16")
    check(settings)                 # bad input fails before OUT.log is opened (and an old one truncated)
    log = log_path_for(args.output, "quantize")
    try:
        with private_tempdir(), third_party_to_log(log, getattr(args, "verbose", False)):
            quantize_onnx(settings)
    except KeyboardInterrupt:       # Ctrl-C: the log of an unfinished run goes too (the file is written atomically)
        log.unlink(missing_ok=True)
        raise
    print(f"ModelOpt / ONNX Runtime messages: {log}" + ("" if getattr(args, "verbose", False) else " (-v shows them live)"))
    return 0
