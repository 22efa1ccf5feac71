"""`infer`: images -> one PNG per image with boxes drawn + one COCO-results JSON for all."""
from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

from runtime.atomic import write_atomic


def add_arguments(p: argparse.ArgumentParser) -> None:
    from effdet_deploy.tool_images import add_checkpoint_flags

    p.add_argument("--model", required=True, help=".onnx, .engine/.plan, a checkpoint (.pth) or shapes_d0")
    p.add_argument("--input", required=True, help="an image or a folder of images")
    p.add_argument("--output", required=True)
    p.add_argument("--backend", default=None, choices=("onnxruntime", "tensorrt", "torch"))
    p.add_argument("--device", default=None, help="cpu, cuda, tensorrt (ORT providers) or cuda:N")
    add_checkpoint_flags(p)
    p.add_argument("--score-threshold", type=float, default=0.3)


def run(args: argparse.Namespace) -> int:
    from effdet_deploy.tool_images import checkpoint_options
    from runtime.coco_eval import to_coco_results
    from runtime.detector import Detector
    from runtime.draw import draw_detections
    from runtime.image_io import list_images, read_image

    files = list_images(args.input)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    options = checkpoint_options(args)
    results = []
    with Detector(args.model, backend=args.backend, device=args.device, score_threshold=args.score_threshold,
                  **options) as det:
        names = det.info.class_names
        backend = det.backend.describe()
        identity = list(range(det.info.num_classes))
        for i, path in enumerate(files, start=1):
            image = read_image(path)
            found = det.detect(image)
            target = out / f"{path.stem}.png"
            png = io.BytesIO()
            draw_detections(image, found, names).save(png, format="PNG")
            write_atomic(target, png.getvalue())
            for r in to_coco_results(i, found, identity):
                results.append({**r, "file_name": path.name})
            labels = ", ".join(sorted({names[c] if c < len(names) else str(c) for c in found.classes.tolist()}))
            print(f"[{i}/{len(files)}] {path.name}: {len(found)} detections{' (' + labels + ')' if labels else ''}")
    target = write_atomic(out / "detections.json", json.dumps(results, indent=1))
    print(f"wrote {len(files)} images and {target} ({backend})")
    return 0
