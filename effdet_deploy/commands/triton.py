"""`triton`: a Triton model repository (config.pbtxt validated with Triton's schema) for a model file."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, required=True, help=".onnx (with --nms onnx) or .engine/.plan")
    p.add_argument("--output", type=Path, required=True, help="model repository folder")
    p.add_argument("--name", default=None,
                   help="model name in the repository (default: the file name, dots as underscores)")
    p.add_argument("--max-batch-size", type=int, default=None, help="default: the file's maximum batch")
    p.add_argument("--dynamic-batching", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--instances", type=int, default=1, help="model instances per GPU")
    p.add_argument("--kind", choices=("KIND_GPU", "KIND_CPU"), default="KIND_GPU")


def run(args: argparse.Namespace) -> int:
    from effdet_deploy.interrupt_cleanup import new_files_removed_on_failure
    from export.triton import TritonSettings, triton_repository

    with new_files_removed_on_failure(args.output):      # never a model copy without its config.pbtxt
        folder = triton_repository(TritonSettings(model=args.model, output=args.output, name=args.name,
                                                  max_batch_size=args.max_batch_size,
                                                  dynamic_batching=args.dynamic_batching, instances=args.instances,
                                                  kind=args.kind))
    print(f"wrote {folder}/config.pbtxt and {folder}/1/ (tritonserver --model-repository {args.output})")
    return 0
