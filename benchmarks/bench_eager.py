"""PyTorch eager latency of `model(x)` for D0 at 512x512, batch 1: unfused vs fused, in one run.

    .venv/bin/python benchmarks/bench_eager.py [--model d0] [--threads 2] [--iterations 20]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from effdet import create_model


def median_ms(model: torch.nn.Module, x: torch.Tensor, iterations: int) -> float:
    with torch.no_grad():
        for _ in range(3):
            model(x)
        times = []
        for _ in range(iterations):
            t = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="d0")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iterations", type=int, default=20)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = create_model(args.model)
    x = torch.randn(1, 3, *model.config.image_size)
    eager = median_ms(model, x, args.iterations)
    fused = median_ms(create_model(args.model).fuse(), x, args.iterations)
    print(f"{model.config.name} {model.config.image_size[0]}x{model.config.image_size[1]} batch 1, "
          f"{args.threads} threads, PyTorch {torch.__version__}")
    print(f"  eager   median {eager:7.1f} ms")
    print(f"  fused   median {fused:7.1f} ms   ({eager / fused:.2f}x faster than eager)")


if __name__ == "__main__":
    main()
