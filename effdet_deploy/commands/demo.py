"""`demo`: the main job on a built-in default, for a first look."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

ASSET = Path(__file__).resolve().parents[2] / "assets" / "demo.jpg"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="tf_efficientdet_d0")
    p.add_argument("--checkpoint", default=None, help="effdet state_dict (default: seeded random weights)")
    p.add_argument("--image", default=str(ASSET))
    p.add_argument("--output", default="demo-output")
    p.add_argument("--score-threshold", type=float, default=0.3)


def run(args: argparse.Namespace) -> int:
    import torch
    from PIL import Image

    from effdet import create_model
    from effdet.predict import detect
    from runtime.nms import NMSParams

    torch.manual_seed(0)
    t0 = time.perf_counter()
    model = create_model(args.model, checkpoint=args.checkpoint)
    print(f"built {model.config.name} ({sum(p.numel() for p in model.parameters()) / 1e6:.2f}M params) "
          f"in {time.perf_counter() - t0:.2f}s{'' if args.checkpoint else ' - random weights: detections are not meaningful'}")
    image = np.asarray(Image.open(args.image).convert("RGB"))
    params = NMSParams(score_threshold=args.score_threshold)
    detect(model, [image], params)  # warm-up
    times = []
    for _ in range(3):
        t = time.perf_counter()
        (result,) = detect(model, [image], params)
        times.append(time.perf_counter() - t)
    print(f"{args.image}: {image.shape[1]}x{image.shape[0]} -> {model.config.image_size[1]}x{model.config.image_size[0]}, "
          f"{len(result)} detections, median {1000 * float(np.median(times)):.1f} ms/image (PyTorch eager, CPU)")
    for box, score, cls in list(zip(result.boxes, result.scores, result.classes))[:10]:
        print(f"  class {int(cls):3d}  score {score:.3f}  box {np.round(box, 1).tolist()}")
    return 0
