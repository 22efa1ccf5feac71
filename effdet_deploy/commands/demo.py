"""`demo`: the main job on the built-in default - the shipped shapes_d0 detector through the whole
pipeline (export, FP16, INT8, engines where TensorRT exists, parity, speed, accuracy), with pictures."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="shapes_d0",
                   help="model name (default: shapes_d0); names without shipped weights get seeded random ones")
    p.add_argument("--output", type=Path, default=Path("demo-output"),
                   help="folder for every artifact, report.md, summary.json, plots and pictures (default: demo-output)")
    p.add_argument("--eval-images", type=int, default=100,
                   help="generated validation scenes for the accuracy table of shapes models (default: 100)")


def run(args: argparse.Namespace) -> int:
    from effdet.config import get_config
    from runtime.errors import DeployError

    get_config(args.model)          # torch-free, before the pipeline module loads torch: answered at once
    if args.eval_images < 1:
        raise DeployError(f"--eval-images must be at least 1, got {args.eval_images}")
    from effdet_deploy.pipeline import PipelineSettings, run_pipeline

    result = run_pipeline(PipelineSettings(model=args.model, output=args.output, eval_images=args.eval_images))
    print(f"\n{'artifact':14s} {'parity':12s} {'AP':>6s} {'median ms':>10s}  backend")
    for label, bench in result.bench.items():
        parity = result.parity.get(label, {}).get("verdict")
        ap = result.accuracy.get(label, {}).get("AP")
        print(f"{label:14s} {parity or '-':12s} "
              f"{'-' if ap is None else f'{ap:.3f}':>6s} {bench['total_ms']['median']:10.1f}  {bench['backend']}")
    for note in result.notes:
        print(f"note: {note}")
    print(f"\nreport: {args.output / 'report.md'} (pictures: {', '.join(result.pictures[:3])}, ...)")
    from effdet_deploy.commands.compare import EXIT_CODES, verdict_of

    return EXIT_CODES[verdict_of([p["verdict"] for p in result.parity.values()])]
