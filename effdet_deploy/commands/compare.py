"""`compare`: targets (any precision/backend) against a reference at two levels - raw network outputs
(every anchor, before NMS) and detections - with a PASS / FAIL (exit 1) / INCONCLUSIVE (exit 3) verdict per
target, JSON, and a side-by-side picture of the worst image per target."""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

from runtime.atomic import write_atomic
from runtime.errors import DeployError, require_file

if TYPE_CHECKING:
    from runtime.parity import ParityResult

EXIT_CODES = {"PASS": 0, "FAIL": 1, "INCONCLUSIVE": 3}


def add_arguments(p: argparse.ArgumentParser) -> None:
    from effdet_deploy.tool_images import add_checkpoint_flags

    p.add_argument("--reference", required=True, help="checkpoint (.pth), shipped name (shapes_d0) or FP32 .onnx")
    p.add_argument("--target", action="append", required=True, help="ONNX or engine; repeat for several")
    p.add_argument("--images", default=None, help="folder of images (default: built-in shapes scenes)")
    p.add_argument("--max-images", type=int, default=16)
    add_checkpoint_flags(p)
    p.add_argument("--atol", type=float, default=None, help="override score/box absolute tolerance")
    p.add_argument("--rtol", type=float, default=None, help="override mean relative score tolerance")
    p.add_argument("--output", default="compare-output", help="folder for compare.json and worst-image PNGs")


def verdict_of(verdicts: list[str]) -> str:
    """FAIL if any target failed, else INCONCLUSIVE if any was, else PASS."""
    return next((v for v in ("FAIL", "INCONCLUSIVE") if v in verdicts), "PASS")


def print_table(results: list[ParityResult]) -> None:
    """One line per target and level, then warnings and reasons."""
    print(f"{'target':34s} {'prec':5s} {'level':10s} {'numbers':58s} result")
    for r in results:
        name, a = Path(r.target).name[:34], r.agreement
        if r.raw is not None:
            w = r.raw
            print(f"{name:34s} {r.precision:5s} {'raw':10s} "
                  f"{f'scores max {w.scores.max_abs:.2e} cos {w.scores.cosine:.6f}; boxes mean {w.boxes.mean_abs:.2e} px':58s}"
                  f" {'PASS' if w else 'FAIL'}")
        else:
            print(f"{name:34s} {r.precision:5s} {'raw':10s} {'-':58s} n/a ({r.raw_note})")
        det = "FAIL" if r.failures else "INCONCLUSIVE" if r.inconclusive else "PASS"
        numbers = (f"matched {a.matched} (ref {a.reference}, tgt {a.target}) F1 {a.f1:.3f} IoU {a.mean_iou:.3f} "
                   f"score err {r.scores.max_abs:.1e}")
        print(f"{name:34s} {r.precision:5s} {'detections':10s} {numbers:58s} {det}")
        for warning in r.warnings:
            print(f"  warning: {warning}")
        print(f"  => {r.verdict}" + (f": {'; '.join(r.reasons())}" if r.verdict != "PASS" else ""))


def check_arguments(args: argparse.Namespace) -> None:
    """Counts, tolerances and the files named, before the banner and before any model is loaded."""
    if args.max_images < 1:
        raise DeployError(f"--max-images must be at least 1, got {args.max_images}")
    for flag, value in (("--atol", args.atol), ("--rtol", args.rtol)):
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise DeployError(f"{flag} must be a finite number >= 0, got {value}")
    files = list(args.target) + ([args.reference] if Path(args.reference).suffix else [])   # not a model name
    for path in map(Path, files):
        require_file(path)


def run(args: argparse.Namespace) -> int:
    from effdet_deploy.reporting import compare_targets, worst_picture
    from effdet_deploy.tool_images import checkpoint_options, tool_images
    from runtime.parity import MIN_MATCHED, SCORE_FLOOR

    check_arguments(args)
    names, images = tool_images(args.images, args.max_images)
    print(f"comparing {len(args.target)} target(s) with {args.reference} on {len(images)} image(s) "
          f"({'built-in shapes scenes' if args.images is None else args.images}); detections at score >= "
          f"{SCORE_FLOOR}, at least {MIN_MATCHED} matched for a detection-level PASS")
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    comparison = compare_targets(args.reference, args.target, images, checkpoint_options(args), args.atol,
                                 args.rtol, builtin_images=args.images is None)
    print_table(comparison.results)
    for index, r in enumerate(comparison.results):
        png = out / f"worst_{Path(r.target).stem}.png"
        worst_picture(comparison, index, images[r.worst_image], ("reference", Path(r.target).name)).save(png)
    report = {"reference": args.reference, "images": names, "score_threshold": SCORE_FLOOR,
              "verdict": verdict_of([r.verdict for r in comparison.results]),
              "targets": [r.to_json() for r in comparison.results]}
    write_atomic(out / "compare.json", json.dumps(report, indent=2))
    print(f"{report['verdict']}; wrote {out / 'compare.json'} and worst-image pictures")
    return EXIT_CODES[str(report["verdict"])]
