"""FP32 vs FP16 vs INT8 files of the shipped shapes_d0 (EfficientDet-D0 at 256) on ONNX Runtime CPU,
measured in one run: median latency with ratios to FP32, COCO AP on generated scenes, and detection
agreement with the FP32 file. INT8 on the CPU is an accuracy preview (Q/DQ emulated), not a speed path.

    .venv/bin/python benchmarks/bench_precision.py [--iterations 20] [--images 100] [--exclude none|auto]
"""
from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

from calibration.artifacts import QuantizeSettings, quantize_onnx
from effdet.synthetic import evaluate_on_synthetic, render, write_dataset
from export.onnx_export import export_onnx
from export.settings import ExportSettings
from runtime.agreement import agreement
from runtime.detector import Detector

sys.path.insert(0, str(Path(__file__).parent))
from timing import median_ms  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--images", type=int, default=100, help="generated validation scenes for AP")
    ap.add_argument("--calib-images", type=int, default=128)
    ap.add_argument("--exclude", default="none")
    args = ap.parse_args()
    ours = logging.getLogger("effdet_deploy")   # our progress and the sensitivity report, not ModelOpt's INFO
    ours.setLevel(logging.INFO)
    ours.addHandler(logging.StreamHandler(sys.stdout))
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        calib = tmp / "calib"
        write_dataset(calib, args.calib_images, 2, progress=False)
        fp32 = export_onnx(ExportSettings(model="shapes_d0", output=tmp / "s.fp32.onnx", score_threshold=0.05))
        files = {"fp32": fp32,
                 "fp16": quantize_onnx(QuantizeSettings(onnx=fp32, output=tmp / "s.fp16.onnx")),
                 "int8": quantize_onnx(QuantizeSettings(onnx=fp32, output=tmp / "s.int8.onnx", precision="int8",
                                                        calib_dir=calib, calib_images=args.calib_images,
                                                        exclude=args.exclude))}
        scenes = [render(1, i).image for i in range(args.images)]
        image = scenes[0]
        rows = {}
        reference = Detector(fp32, score_threshold=0.0).detect(scenes)
        for label, path in files.items():
            det = Detector(path, score_threshold=0.0)     # every detection the file keeps: mAP needs them
            ms = median_ms(lambda: det.detect(image), args.iterations)
            metrics = evaluate_on_synthetic(det.detect, args.images)
            agree = agreement(reference, det.detect(scenes), score_threshold=0.3)
            rows[label] = (ms, metrics["AP"], metrics["AP50"], agree.f1, agree.mean_iou)
    base = rows["fp32"][0]
    print(f"shapes_d0 (D0 256x256), ORT CPU, batch 1, {args.images} generated scenes, INT8 exclude={args.exclude}")
    print(f"{'file':6s} {'median ms':>10s} {'vs fp32':>8s} {'AP':>7s} {'AP50':>7s} {'F1 vs fp32':>11s} {'IoU':>6s}")
    for label, (ms, ap_, ap50, f1, iou) in rows.items():
        print(f"{label:6s} {ms:10.1f} {base / ms:7.2f}x {ap_:7.3f} {ap50:7.3f} {f1:11.3f} {iou:6.3f}")


if __name__ == "__main__":
    main()
