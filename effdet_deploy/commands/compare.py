"""`compare`: detections of targets (any precision/backend) against a reference; PASS/FAIL table, exit 1
on FAIL, JSON, and a side-by-side picture of the worst image per target."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from runtime.atomic import write_atomic


def add_arguments(p: argparse.ArgumentParser) -> None:
    from effdet_deploy.tool_images import add_checkpoint_flags

    p.add_argument("--reference", required=True, help="checkpoint (.pth), shipped name (shapes_d0) or FP32 .onnx")
    p.add_argument("--target", action="append", required=True, help="ONNX or engine; repeat for several")
    p.add_argument("--images", default=None, help="folder of images (default: built-in set)")
    p.add_argument("--max-images", type=int, default=16)
    add_checkpoint_flags(p)
    p.add_argument("--atol", type=float, default=None, help="override score/box absolute tolerance")
    p.add_argument("--rtol", type=float, default=None, help="override mean relative score tolerance")
    p.add_argument("--output", default="compare-output", help="folder for compare.json and worst-image PNGs")


def run(args: argparse.Namespace) -> int:
    from effdet_deploy.tool_images import checkpoint_options
    from effdet_deploy.reporting import compare_targets, side_by_side
    from effdet_deploy.tool_images import tool_images

    names, images = tool_images(args.images, args.max_images)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    results, detections = compare_targets(args.reference, args.target, images, checkpoint_options(args), args.atol,
                                          args.rtol)
    print(f"{'target':40s} {'prec':5s} {'F1':>6s} {'IoU':>6s} {'score err':>10s} {'box err px':>10s}  result")
    for r in results:
        a = r.agreement
        print(f"{Path(r.target).name[:40]:40s} {r.precision:5s} {a.f1:6.3f} {a.mean_iou:6.3f} {r.scores.max_abs:10.2e} "
              f"{r.boxes.max_abs:10.3f}  {'PASS' if r else 'FAIL: ' + '; '.join(r.failures)}")
    for r, dets in zip(results, detections[1:]):
        png = out / f"worst_{Path(r.target).stem}.png"
        side_by_side(images[r.worst_image], detections[0][r.worst_image], dets[r.worst_image],
                     ("reference", Path(r.target).name)).save(png)
    report = {"reference": args.reference, "images": names, "targets": [r.to_json() for r in results]}
    write_atomic(out / "compare.json", json.dumps(report, indent=2))
    print(f"wrote {out / 'compare.json'}")
    return 0 if all(results) else 1
