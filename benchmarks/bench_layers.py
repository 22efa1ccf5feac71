"""`compare --layers` on the shipped shapes_d0 (EfficientDet-D0 at its native 256): how long the layer-wise
analysis of 16 images takes and how much memory it peaks at (issue 24: <= 60 s on 2 cores), then the exclude-file
round trip: `--suggest-exclude` on the default INT8 file, `quantize --exclude @FILE` with the same calibration
images, and COCO AP of FP32, the default INT8 and the @FILE INT8 on held-out generated scenes.

Seeds: calibration scenes 21 (tests' CALIB_SEED), compare's built-in images 31 (tool_images.TOOL_SEED, where the
exclude file is chosen), held-out AP scenes 41 (none of 0-8, 21-23, 31).

    .venv/bin/python benchmarks/bench_layers.py [--work DIR] [--images 16] [--ap-scenes 300] [--no-roundtrip]
"""
from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CALIB_SEED, HELDOUT_SEED, CALIB_IMAGES = 21, 41, 64


def cli(*args: object) -> tuple[float, float, str]:
    """(wall s, peak RSS MiB of the child, stdout) of one effdet-deploy command."""
    t0 = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    proc = subprocess.run([sys.executable, "-m", "effdet_deploy", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True)
    if proc.returncode not in (0, 1, 3):
        sys.exit(f"effdet-deploy {' '.join(map(str, args))} failed: {proc.stderr.strip()}")
    peak = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    return time.perf_counter() - t0, peak, proc.stdout


def files(work: Path) -> tuple[Path, Path, Path]:
    """FP32 export and default INT8 (64 calibration scenes of seed 21) of shapes_d0 at 256, made once per folder."""
    from calibration.artifacts import QuantizeSettings, quantize_onnx
    from effdet.synthetic import write_dataset
    from export.onnx_export import export_onnx
    from export.settings import ExportSettings

    fp32, int8, calib = work / "shapes.fp32.onnx", work / "shapes.int8.onnx", work / "calib"
    if not fp32.exists():
        export_onnx(ExportSettings(model="shapes_d0", output=fp32, score_threshold=0.05))
    if not calib.exists():
        write_dataset(calib, CALIB_IMAGES, CALIB_SEED, progress=False)
    if not int8.exists():
        quantize_onnx(QuantizeSettings(onnx=fp32, output=int8, precision="int8", calib_dir=calib,
                                       calib_images=CALIB_IMAGES))
    return fp32, int8, calib


def ap_of(path: Path, scenes: int) -> float:
    from effdet.synthetic import evaluate_on_synthetic
    from runtime.detector import Detector

    with Detector(path, score_threshold=0.0) as det:
        return float(evaluate_on_synthetic(det.detect, scenes, seed=HELDOUT_SEED)["AP"] or 0.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=None, help="folder to keep the files in (default: a temp folder)")
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--ap-scenes", type=int, default=300)
    ap.add_argument("--no-roundtrip", action="store_true")
    ap.add_argument("--no-timing", action="store_true", help="skip the timed analysis (round trip only)")
    ap.add_argument("--suggest-target", type=float, default=None, help="compare --suggest-target (dB)")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-layers-"))
    work.mkdir(parents=True, exist_ok=True)
    fp32, int8, calib = files(work)
    exclude = work / "exclude.json"
    wall, peak, out = cli("compare", "--reference", fp32, "--target", int8, "--layers", "--max-images", args.images,
                          "--output", work / "compare-output") if not args.no_timing else (0.0, 0.0, "")
    analysis = next((line for line in out.splitlines() if "tensors compared" in line), "?")
    print(f"compare --layers, {args.images} images at 256 (whole command incl. the detection compare): {wall:.1f} s, "
          f"peak RSS {peak:.0f} MiB; {analysis}")
    if args.no_roundtrip:
        return
    wall, peak, out = cli("compare", "--reference", fp32, "--target", int8, "--layers", "--max-images", args.images,
                          "--output", work / "compare-output", "--suggest-exclude", exclude,
                          *(["--suggest-target", args.suggest_target] if args.suggest_target is not None else []))
    print(next(line for line in out.splitlines() if "group(s) out of INT8 (" in line))
    better = work / f"shapes.int8.excluded{args.suggest_target or ''}.onnx"
    cli("quantize", "--onnx", fp32, "--output", better, "--precision", "int8", "--calib-dir", calib,
        "--calib-images", CALIB_IMAGES, "--exclude", f"@{exclude}")
    aps = {name: ap_of(path, args.ap_scenes) for name, path in (("FP32", fp32), ("INT8 default", int8),
                                                                 ("INT8 --exclude @FILE", better))}
    print(f"AP on {args.ap_scenes} held-out scenes of seed {HELDOUT_SEED}: " +
          ", ".join(f"{k} {v:.4f}" for k, v in aps.items()) +
          f"; @FILE - default = {aps['INT8 --exclude @FILE'] - aps['INT8 default']:+.4f}")


if __name__ == "__main__":
    main()
