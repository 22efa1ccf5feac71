"""`pipeline`: export, FP16/INT8, engines where TensorRT exists, compare, bench, eval -> report.md."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="shapes_d0", help="model name (default: the shipped shapes_d0)")
    p.add_argument("--checkpoint", type=Path, default=None)
    p.add_argument("--image-size", type=int, default=None)
    p.add_argument("--calib-dir", type=Path, default=None)
    p.add_argument("--calib-images", type=int, default=128)
    p.add_argument("--images", type=Path, default=None, help="eval images (with --annotations)")
    p.add_argument("--annotations", type=Path, default=None)
    p.add_argument("--eval-images", type=int, default=100, help="generated validation scenes (shapes models)")
    p.add_argument("--bench-iterations", type=int, default=10)
    p.add_argument("--output", type=Path, default=Path("pipeline-output"))


def run(args: argparse.Namespace) -> int:
    from effdet_deploy.pipeline import PipelineSettings, run_pipeline

    result = run_pipeline(PipelineSettings(
        model=args.model, output=args.output, checkpoint=args.checkpoint, image_size=args.image_size,
        calib_dir=args.calib_dir, calib_images=args.calib_images, images=args.images, annotations=args.annotations,
        eval_images=args.eval_images, bench_iterations=args.bench_iterations))
    from effdet_deploy.commands.compare import EXIT_CODES, verdict_of

    verdict = verdict_of([p["verdict"] for p in result.parity.values()])
    odd = [f"{k} {p['verdict']}" for k, p in result.parity.items() if p["verdict"] != "PASS"]
    print(f"wrote {args.output / 'report.md'}, summary.json and plots; parity {verdict}"
          + (f" ({', '.join(odd)})" if odd else " for every artifact"))
    return EXIT_CODES[verdict]
