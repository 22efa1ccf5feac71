"""`quantize`: FP32 ONNX -> strongly typed FP16 ONNX, or Q/DQ INT8 ONNX calibrated on an image folder.
Our progress on the console; ModelOpt's and ONNX Runtime's output in OUTPUT.log (-v: live too). Ctrl-C leaves
neither OUTPUT.log nor temporary files."""
from __future__ import annotations

import argparse
from pathlib import Path

from runtime.errors import DeployError


# the INT8-only flags and their defaults: given with --precision fp16 they are refused, not ignored
DEFAULTS: dict[str, object] = {"calib_dir": None, "calib_images": 500, "calib_batch": 8, "method": "mixed",
                               "exclude": "default", "target": 0.05, "seed": 0, "trt_version": "10.0"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--onnx", type=Path, required=True, help="an FP32 file from `effdet-deploy export`")
    p.add_argument("--output", type=Path, required=True)
    p.add_argument("--precision", choices=("fp16", "int8"), required=True)
    p.add_argument("--calib-dir", type=Path, help="representative images (int8)")
    p.add_argument("--calib-images", type=int, default=DEFAULTS["calib_images"],
                   help="images sampled from --calib-dir (fixed seed)")
    p.add_argument("--calib-batch", type=int, default=DEFAULTS["calib_batch"])
    p.add_argument("--method", choices=("mixed", "entropy", "max"), default=DEFAULTS["method"],
                   help="mixed: entropy calibration, per tensor the best of entropy/percentile/max/clip-grid "
                        "ranges, then conv bias correction")
    p.add_argument("--exclude", default=DEFAULTS["exclude"],
                   help="default (measured: the box head and the squeeze-excite gates) | none | "
                        "auto (measured search) | node,names | @FILE (from compare --layers --suggest-exclude FILE)")
    p.add_argument("--target", type=float, default=DEFAULTS["target"],
                   help="--exclude auto: accepted relative output error")
    p.add_argument("--seed", type=int, default=DEFAULTS["seed"], help="calibration image sampling")
    p.add_argument("--trt-version", default=DEFAULTS["trt_version"],
                   help="int8: the TensorRT the file is for. 10.0 and later (default): ModelOpt's form (opset 19, FP16 "
                        "scales; trtexec --stronglyTyped); 8.6: FP32 math at opset 17 (trtexec --int8 --fp16)")


def check_arguments(args: argparse.Namespace) -> None:
    """Counts, the seed and the files named, before calibration/ (which imports torch) loads: one line at once."""
    from runtime.image_io import list_images

    if args.precision == "fp16":
        given = [f"--{name.replace('_', '-')}" for name, default in DEFAULTS.items() if getattr(args, name) != default]
        if given:
            raise DeployError(f"{', '.join(given)}: INT8 calibration flags, not used by --precision fp16")
    for flag, value, least in (("--calib-images", args.calib_images, 1), ("--calib-batch", args.calib_batch, 1),
                               ("--seed", args.seed, 0)):
        if value < least:
            raise DeployError(f"{flag} must be at least {least}, got {value}")
    if not args.target > 0:
        raise DeployError(f"--target must be a relative error > 0, got {args.target}")
    if args.target != DEFAULTS["target"] and args.exclude != "auto":
        raise DeployError(f"--target is the accepted error of --exclude auto; unused with --exclude {args.exclude}")
    if args.precision == "int8":
        from calibration.qdq_forms import form_for

        form_for(args.trt_version)                  # a malformed or unsupported version: its one line
        if args.calib_dir is None:
            raise DeployError("--precision int8 needs --calib-dir (a folder of representative images)")
        list_images(args.calib_dir)                 # missing, or no image in it
        if args.exclude.startswith("@"):
            from calibration.exclude_file import read_exclude_file

            read_exclude_file(Path(args.exclude[1:]))   # missing or not an exclude file (its nodes: checked later)
    from export.onnx_io import metadata_of, read_onnx

    precision = metadata_of(read_onnx(args.onnx, weights=False)).get("precision", "fp32")   # not ONNX: one line
    if precision != "fp32":
        raise DeployError(f"{args.onnx}: is already {precision}; quantize the FP32 export")


def run(args: argparse.Namespace) -> int:
    check_arguments(args)
    from calibration.artifacts import QuantizeSettings, check, quantize_onnx
    from effdet_deploy.console import log_path_for, third_party_to_log
    from effdet_deploy.interrupt_cleanup import private_tempdir

    settings = QuantizeSettings(onnx=args.onnx, output=args.output, precision=args.precision,
                                calib_dir=args.calib_dir, calib_images=args.calib_images, calib_batch=args.calib_batch,
                                method=args.method, exclude=args.exclude, target=args.target, seed=args.seed,
                                trt_version=args.trt_version)
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
