"""`bench`: trtexec-style latency/throughput of a model file on a backend, split into phases."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from runtime.atomic import write_atomic


def add_arguments(p: argparse.ArgumentParser) -> None:
    from effdet_deploy.tool_images import add_checkpoint_flags

    p.add_argument("--model", required=True)
    p.add_argument("--backend", default=None, choices=("onnxruntime", "tensorrt", "torch"))
    p.add_argument("--device", default=None)
    add_checkpoint_flags(p)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--warmup", type=int, default=5, help="runs before timing")
    p.add_argument("--iterations", type=int, default=20, help="at least this many timed runs")
    p.add_argument("--duration", type=float, default=0.0, help="and at least this many seconds")
    p.add_argument("--use-cuda-graph", action="store_true", help="TensorRT: replay a captured CUDA graph")
    p.add_argument("--json", default=None, help="write the statistics here")


def run(args: argparse.Namespace) -> int:
    from effdet_deploy.tool_images import checkpoint_options
    from effdet_deploy.benchmarking import bench_model
    from runtime.benchmark import format_result

    result, description = bench_model(args.model, args.batch, args.warmup, args.iterations, args.duration,
                                      backend=args.backend, device=args.device, options=checkpoint_options(args),
                                      use_cuda_graph=args.use_cuda_graph)
    print("\n".join(format_result(f"{Path(args.model).name} on {description}", result)))
    if args.json:
        write_atomic(args.json, json.dumps({"model": args.model, "backend": description, **result.to_json()},
                                           indent=2))
    return 0
