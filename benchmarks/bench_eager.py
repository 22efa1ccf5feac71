"""PyTorch eager latency of `model(x)` for D0 at 512x512, batch 1: unfused vs fused, in one run.

    .venv/bin/python benchmarks/bench_eager.py [--model d0] [--threads 2] [--iterations 20]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # the repo root: runs from a bare checkout too
from effdet import create_model  # noqa: E402

from timing import median_ms  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="d0")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iterations", type=int, default=20)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = create_model(args.model)
    x = torch.randn(1, 3, *model.config.image_size)
    fused_model = create_model(args.model).fuse()
    with torch.no_grad():
        eager = median_ms(lambda: model(x), args.iterations)
        fused = median_ms(lambda: fused_model(x), args.iterations)
    print(f"{model.config.name} {model.config.image_size[0]}x{model.config.image_size[1]} batch 1, "
          f"{args.threads} threads, PyTorch {torch.__version__}")
    print(f"  eager   median {eager:7.1f} ms")
    print(f"  fused   median {fused:7.1f} ms   ({eager / fused:.2f}x faster than eager)")


if __name__ == "__main__":
    main()
