"""`eval`: COCO mAP of any model file on a COCO-format dataset. The class mapping is explicit and
printed: --class-map sorted (c-th category id) or id (c + 1, effdet's 90-class COCO checkpoints).
Every detection the file keeps is scored (mAP needs the low-score ones); the COCO results file goes
into an output folder, never silently next to the dataset, and only once everything succeeded. The
annotation file is checked before the model loads; a dataset with no images or no objects is INCONCLUSIVE
(exit 3, nothing written): an AP of 0 or n/a there would measure nothing. Unreadable images are skipped, counted
and left out of the mAP with their objects (the denominator is printed); none readable is INCONCLUSIVE too."""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    from effdet_deploy.tool_images import add_checkpoint_flags
    from runtime.coco_eval import CLASS_MAPS

    p.add_argument("--model", required=True, help=".onnx, .engine/.plan, a checkpoint (.pth) or shapes_d0")
    p.add_argument("--images", required=True, help="folder holding the annotation file's file_name entries")
    p.add_argument("--annotations", required=True, help="COCO instances JSON")
    p.add_argument("--backend", default=None, choices=("onnxruntime", "tensorrt", "torch"),
                   help="default: from the file suffix")
    p.add_argument("--device", default=None, help="cpu, cuda, tensorrt (ORT providers) or cuda:N")
    add_checkpoint_flags(p)
    p.add_argument("--batch", type=int, default=8, help="images per detect() call")
    p.add_argument("--class-map", choices=CLASS_MAPS, default="auto",
                   help="model class c -> category id: sorted = c-th id; id = c+1 (effdet COCO, 90 classes); "
                        "auto = id when the model has 90 outputs for 80 categories, else sorted")
    p.add_argument("--output", default=None,
                   help="COCO results JSON to write (default: eval-output/<model file name>.results.json)")


def default_output(model: str) -> Path:
    """eval-output/<model file name>.results.json: in the working folder, beside nothing of the user's."""
    return Path("eval-output") / f"{Path(model).name}.results.json"


def run(args: argparse.Namespace) -> int:
    from effdet_deploy.commands.compare import EXIT_CODES
    from effdet_deploy.tool_images import checkpoint_options
    from runtime.coco_annotations import load_annotations, nothing_to_evaluate
    from runtime.coco_eval import NothingToEvaluate, evaluate_files, format_metric
    from runtime.errors import DeployError

    if args.batch < 1:
        raise DeployError(f"--batch must be >= 1, got {args.batch}")
    out = Path(args.output) if args.output else default_output(args.model)
    if out.is_dir():
        raise DeployError(f"{out}: is a folder; --output names the results file, e.g. {out / 'results.json'}")
    if not Path(args.images).is_dir():
        raise DeployError(f"{args.images}: --images folder not found")
    coco = load_annotations(args.annotations)
    why = nothing_to_evaluate(coco)
    if why is not None:
        print(f"eval: INCONCLUSIVE: {args.annotations}: {why}; no mAP to measure, {out} not written")
        return EXIT_CODES["INCONCLUSIVE"]
    try:
        metrics = evaluate_files(args.model, Path(args.images), Path(args.annotations), out, backend=args.backend,
                                 device=args.device, options=checkpoint_options(args), batch=args.batch,
                                 class_map=args.class_map, coco=coco)
    except NothingToEvaluate as e:           # every image unreadable, or no object on the readable ones
        print(f"eval: INCONCLUSIVE: {e}; no mAP to measure, {out} not written")
        return EXIT_CODES["INCONCLUSIVE"]
    print("  ".join(f"{k} {format_metric(v, 4)}" for k, v in metrics.items())
          + ("  (n/a: the dataset has no objects of that size)" if None in metrics.values() else ""))
    print(f"wrote {out} (COCO results)")
    print(json.dumps(metrics))
    return 0
