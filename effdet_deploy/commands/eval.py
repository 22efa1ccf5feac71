"""`eval`: COCO mAP of any model file on a COCO-format dataset. The class mapping is explicit and
printed: --class-map sorted (c-th category id) or id (c + 1, effdet's 90-class COCO checkpoints)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    from effdet_deploy.tool_images import add_checkpoint_flags

    p.add_argument("--model", required=True)
    p.add_argument("--images", required=True, help="folder holding the annotation file's file_name entries")
    p.add_argument("--annotations", required=True, help="COCO instances JSON")
    p.add_argument("--backend", default=None, choices=("onnxruntime", "tensorrt", "torch"))
    p.add_argument("--device", default=None)
    add_checkpoint_flags(p)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--class-map", choices=("auto", "sorted", "id"), default="auto",
                   help="model class c -> category id: sorted = c-th id; id = c+1 (effdet COCO, 90 classes)")
    p.add_argument("--output", default=None, help="COCO results JSON (default: next to the annotations)")


def run(args: argparse.Namespace) -> int:
    from effdet_deploy.tool_images import checkpoint_options
    from runtime.coco_eval import evaluate_files

    out = Path(args.output) if args.output else Path(args.annotations).with_suffix(".results.json")
    metrics = evaluate_files(args.model, Path(args.images), Path(args.annotations), out, backend=args.backend,
                             device=args.device, options=checkpoint_options(args), batch=args.batch,
                             class_map=args.class_map)
    print("  ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    print(json.dumps(metrics))
    return 0
