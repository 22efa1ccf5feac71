"""ORT CPU latency of the exported D0 files (--nms efficient via the CPU reference op, --nms onnx) next to
PyTorch eager, batch 1, 2 threads, measured in one run, with ratios.

    .venv/bin/python benchmarks/bench_export.py [--model d0] [--iterations 20]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from effdet import create_model
from effdet.predict import detect_batch
from export.onnx_export import export_onnx
from export.settings import ExportSettings
from runtime.nms import NMSParams
from runtime.onnx_session import create_session

sys.path.insert(0, str(Path(__file__).parent))
from timing import median_ms  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="d0")
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    tmp = Path(tempfile.mkdtemp())
    ckpt = tmp / "model.pth"
    model = create_model(args.model)
    torch.save(model.state_dict(), ckpt)
    size = model.config.image_size
    images = np.random.default_rng(0).integers(0, 256, (1, *size, 3), dtype=np.uint8)
    x = np.ascontiguousarray(images.transpose(0, 3, 1, 2)).astype(np.float32)
    params = NMSParams(score_threshold=0.001, iou_threshold=0.5, max_output_boxes=100)
    results = {"PyTorch eager (model + numpy NMS)": median_ms(lambda: detect_batch(model, images, params), args.iterations)}
    for nms in ("efficient", "onnx"):
        path = export_onnx(ExportSettings(model=args.model, checkpoint=ckpt, output=tmp / f"{nms}.onnx", nms=nms))
        session = create_session(path, threads=args.threads)
        results[f"ORT CPU --nms {nms}"] = median_ms(lambda: session.run(None, {"images": x}), args.iterations)
    base = results["PyTorch eager (model + numpy NMS)"]
    print(f"{model.config.name} {size[0]}x{size[1]}, batch 1, {args.threads} threads, median of {args.iterations}")
    for name, ms in results.items():
        print(f"  {name:36s} {ms:8.1f} ms   {base / ms:5.2f}x vs eager")


if __name__ == "__main__":
    main()
