"""Shared helpers for the export tests: build a checkpoint, export variants, match detections."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from export.onnx_export import export_onnx
from export.settings import ExportSettings
from reference import load_reference
from runtime.boxes import box_iou

ASSET = Path(__file__).resolve().parents[1] / "effdet_deploy" / "assets" / "demo.jpg"


def reference_checkpoint(name: str, folder: Path, separate_for: np.ndarray | None = None) -> Path:
    """effdet fixture weights saved as a checkpoint. With `separate_for` images, the class head is
    rescaled so its logits have std 3 on them and ~0.3% of (anchor, class) pairs score above 0.55:
    well separated scores make detection-level comparisons meaningful."""
    state, _ = load_reference(name)
    if separate_for is not None:
        from effdet import create_model
        from effdet.predict import raw_outputs

        key = "class_net.predict.conv_pw"
        state[f"{key}.bias"] = torch.zeros_like(state[f"{key}.bias"])
        model = create_model(name, num_classes=state[f"{key}.weight"].shape[0] // 9)
        model.load_state_dict(state)
        _, scores = raw_outputs(model, separate_for)
        logits = np.log(scores.astype(np.float64) / (1 - scores))
        k = 3.0 / logits.std()
        state[f"{key}.weight"] = state[f"{key}.weight"] * float(k)
        state[f"{key}.bias"] += float(0.2 - k * np.percentile(logits, 99.7))
    path = folder / f"{name}.pth"
    torch.save(state, path)
    return path


def sample_images(size: tuple[int, int], count: int = 2) -> np.ndarray:
    """[count,H,W,3] uint8: the demo picture resized, then a seeded noisy variant."""
    base = np.asarray(Image.open(ASSET).convert("RGB").resize((size[1], size[0])))
    rng = np.random.default_rng(0)
    out = [base] + [np.clip(base.astype(int) + rng.integers(-40, 40, base.shape), 0, 255) for _ in range(count - 1)]
    return np.stack(out).astype(np.uint8)


def export(tmp: Path, model: str, ckpt: Path | None, **kw) -> Path:
    path = tmp / f"{model}_{kw.get('nms', 'efficient')}_{abs(hash(tuple(sorted(map(str, kw.items())))))}.onnx"
    return export_onnx(ExportSettings(model=model, checkpoint=ckpt, output=path, **kw))


def nchw(images: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2)).astype(np.float32)


def match_detections(a: tuple, b: tuple, image: int) -> dict:
    """Match image `image` of two 4-output tuples by class and IoU >= 0.99; returns counts and worst deltas."""
    na, nb = int(a[0][image, 0]), int(b[0][image, 0])
    ba, sa, ca = a[1][image, :na], a[2][image, :na], a[3][image, :na]
    bb, sb, cb = b[1][image, :nb], b[2][image, :nb], b[3][image, :nb]
    iou = box_iou(ba, bb) if na and nb else np.zeros((na, nb))
    matched, worst_score = 0, 0.0
    used = set()
    for i in range(na):
        cand = [j for j in range(nb) if j not in used and cb[j] == ca[i] and iou[i, j] >= 0.99]
        if cand:
            j = max(cand, key=lambda j: iou[i, j])
            used.add(j)
            matched += 1
            worst_score = max(worst_score, abs(float(sa[i]) - float(sb[j])))
    return {"a": na, "b": nb, "matched": matched, "worst_score": worst_score}
