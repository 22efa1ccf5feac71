"""Flags several commands share, checked on the parsed command line before the command's module runs (issue 25:
`infer --image-size 0` or `compare --arch nosuch` took 2-4 s of torch import before their one line). Only
torch-free checks live here; each command checks its own flags in its module, also before heavy imports."""
from __future__ import annotations

import argparse
import math

from runtime.errors import DeployError

# float flags whose own range check (`x < 0`, `x <= 0`) nan and inf pass: the thresholds, --atol/--rtol and train's
# numbers are checked with isfinite or a closed range where they are read
FINITE_FLAGS = ("duration", "target", "suggest_target", "max_request_mb", "max_image_mp")


def check_shared_arguments(args: argparse.Namespace) -> None:
    """--image-size given as text (N or H,W: export, and a .pth checkpoint's size in infer/compare/bench/eval/
    info), --arch (an architecture name), and every float flag is a finite number (nan and inf compare false with
    every bound, so a range check written as `x < 0` lets them through: `bench --duration inf` never ended)."""
    from effdet.config import get_config, parse_image_size
    from export.settings_check import MAX_IMAGE_SIDE

    size = getattr(args, "image_size", None)
    if isinstance(size, str):
        try:
            h, w = parse_image_size(size)
        except DeployError as e:
            raise DeployError(f"--image-size: {e}") from None
        if max(h, w) > MAX_IMAGE_SIDE:
            raise DeployError(f"--image-size {h}x{w}: at most {MAX_IMAGE_SIDE} per side "
                              "(EfficientDet's largest, D7x, is 1536)")
    if getattr(args, "arch", None):
        try:
            get_config(args.arch)
        except DeployError as e:
            raise DeployError(f"--arch: {e}") from None
    for dest in FINITE_FLAGS:
        value = getattr(args, dest, None)
        if isinstance(value, float) and not math.isfinite(value):
            raise DeployError(f"--{dest.replace('_', '-')} must be a finite number, got {value}")
