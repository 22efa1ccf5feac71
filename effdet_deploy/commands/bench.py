"""`bench`: trtexec-style latency/throughput of a model file on a backend, split into phases."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from runtime.atomic import write_atomic


def add_arguments(p: argparse.ArgumentParser) -> None:
    from effdet_deploy.tool_images import add_checkpoint_flags, add_threads_flag

    p.add_argument("--model", required=True, help=".onnx, .engine/.plan, a checkpoint (.pth) or shapes_d0")
    p.add_argument("--backend", default=None, choices=("onnxruntime", "tensorrt", "torch"),
                   help="default: from the file suffix")
    p.add_argument("--device", default=None, help="cpu, cuda, tensorrt (ORT providers) or cuda:N")
    add_checkpoint_flags(p)
    add_threads_flag(p)
    p.add_argument("--batch", type=int, default=1,
                   help="images per detect() call (beyond the file's max batch: run in chunks, and said so)")
    p.add_argument("--warmup", type=int, default=5, help="runs before timing")
    p.add_argument("--iterations", type=int, default=20, help="at least this many timed runs")
    p.add_argument("--duration", type=float, default=0.0, help="and at least this many seconds")
    p.add_argument("--use-cuda-graph", action="store_true", help="TensorRT: replay a captured CUDA graph")
    p.add_argument("--json", default=None, help="write the statistics to this file (default: console only)")


def run(args: argparse.Namespace) -> int:
    from effdet_deploy.tool_images import backend_options
    from effdet_deploy.benchmarking import bench_model
    from runtime.benchmark import format_result

    result, description = bench_model(args.model, args.batch, args.warmup, args.iterations, args.duration,
                                      backend=args.backend, device=args.device, options=backend_options(args),
                                      use_cuda_graph=args.use_cuda_graph)
    print("\n".join(format_result(f"{Path(args.model).name} on {description}", result)))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        write_atomic(args.json, json.dumps({"model": args.model, "backend": description, **result.to_json()},
                                           indent=2))
    return 0
