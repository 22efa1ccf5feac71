"""How far a GPU's reduced-precision arithmetic moves the raw outputs (decoded boxes and sigmoid scores of every
anchor) from CPU FP32: the evidence behind compare's FP32 and FP16 limits (runtime/parity.py:TOLERANCES).

- FP32 with TF32 convolutions (TensorRT builds FP32 engines with TF32 by default on Ampere and later), and
  with TF32 off;
- FP16: the fused model in half precision (raw_outputs casts the normalized input to the model's dtype; like
  our strongly typed FP16 file, whose tail stays FP32, decoding and sigmoid run in FP32).
Measured through PyTorch's cuDNN, not TensorRT. shapes_d0 at 256 and 512, 12 generated scenes of seed 23;
detections as compare judges them (score >= 0.3, matched at IoU 0.5, same class).

    python benchmarks/gpu_raw_error.py        # needs a CUDA build of PyTorch and a GPU
"""
from __future__ import annotations

import copy
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from effdet import create_model  # noqa: E402
from effdet.predict import raw_outputs  # noqa: E402
from effdet.synthetic import render  # noqa: E402
from runtime.letterbox import letterbox  # noqa: E402
from runtime.agreement import agreement, match_pairs  # noqa: E402
from runtime.nms import NMSParams, efficient_nms  # noqa: E402
from runtime.parity import SCORE_FLOOR, TOLERANCES, tensor_stats  # noqa: E402
from runtime.result import Detections  # noqa: E402


def detections(raw: tuple[np.ndarray, np.ndarray]) -> list[Detections]:
    """The numpy NMS at compare's score floor, per image (network-input pixels)."""
    params = NMSParams(score_threshold=SCORE_FLOOR, score_activation=False)
    num, boxes, scores, classes = efficient_nms(raw[0], raw[1], None, params)
    return [Detections.from_padded(int(num[i, 0]), boxes[i], scores[i], classes[i]) for i in range(len(num))]


def detection_errors(ref: list[Detections], got: list[Detections]) -> str:
    """F1 and the max box / score error of matched detections: what compare's detection level judges."""
    box_err = score_err = 0.0
    for r, g in zip(ref, got):
        for i, j, _ in match_pairs(r, g, 0.5):
            box_err = max(box_err, float(np.abs(r.boxes[i] - g.boxes[j]).max()))
            score_err = max(score_err, float(abs(r.scores[i] - g.scores[j])))
    a = agreement(ref, got, SCORE_FLOOR)
    return f"detections F1 {a.f1:.3f} ({a.matched} matched), max box {box_err:.3g} px, max score {score_err:.3g}"


def line(label: str, ref: tuple[np.ndarray, np.ndarray], got: tuple[np.ndarray, np.ndarray]) -> str:
    b, s = tensor_stats(ref[0], got[0]), tensor_stats(ref[1], got[1])
    return (f"{label:28s} boxes max {b.max_abs:.3g} px mean {b.mean_abs:.3g} px cos {b.cosine:.9f} | "
            f"scores max {s.max_abs:.3g} mean {s.mean_abs:.3g} cos {s.cosine:.9f} | "
            f"{detection_errors(detections(ref), detections(got))}")


def main() -> None:
    if not torch.cuda.is_available():
        sys.exit(f"gpu_raw_error: this PyTorch ({torch.__version__}) sees no CUDA GPU")
    print("torch", torch.__version__, "on", torch.cuda.get_device_name(0))
    for precision in ("fp32", "fp16"):
        lim = TOLERANCES[precision]
        print(f"{precision} raw limits: score max {lim['raw_score_atol']}, cosine {lim['raw_cosine']}, "
              f"box mean {lim['raw_box_mean']} px per 512; detections: F1 {lim['f1']}, box {lim['box_atol']} px, "
              f"score {lim['score_atol']}")
    for size in (256, 512):
        cpu = create_model("shapes_d0", pretrained=True, image_size=size).eval()
        images = np.stack([letterbox(render(23, i).image, (size, size), cpu.config.mean)[0] for i in range(12)])
        for fused in (False, True):
            model = copy.deepcopy(cpu).fuse() if fused else cpu
            name = f"{size} {'fused' if fused else 'unfused'}"
            with torch.no_grad():
                ref = raw_outputs(model, images)
                gpu = copy.deepcopy(model).to("cuda")
                for tf32 in (True, False):
                    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = tf32
                    print(line(f"{name} fp32 tf32={tf32}", ref, raw_outputs(gpu, images)))
                if fused:
                    print(line(f"{name} fp16", ref, raw_outputs(gpu.half(), images)))


if __name__ == "__main__":
    main()
