"""`--exclude auto`: measure which parts of the network INT8 hurts, and keep the worst out of INT8 (FP16 math).

NVIDIA's EfficientDet sample kept a fixed list (stem and first blocks) in higher precision and still
lost 4.2 AP (0.341 -> 0.299). Here each block (backbone stage, BiFPN cell, head tower, head output conv)
is quantized alone and its effect on the network outputs measured on held-out calibration images; then
blocks are kept in FP32, worst first, until the whole quantized network is within the target.
Error = detection disagreement with the FP32 file on the held-out images, through the real tail (NMS):
(1 - F1 at IoU 0.5, same class) + mean |score delta| + (1 - mean IoU) over detections scoring >= 0.3.
Raw head maps are a poor proxy: most anchors are background whose logits and box regressions do not
matter, and relative errors on them dominate any tensor-level metric.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from calibration.graph_split import SplitGraph, join
from calibration.groups import groups_of
from calibration.int8 import quantize_body
from runtime.agreement import agreement
from runtime.log import logger
from runtime.progress import progress_bar
from runtime.result import Detections

SCORE_THRESHOLD = 0.3   # detections that a user would see; lower scores are noise either way


def detections_of(parts: SplitGraph, body: onnx.ModelProto, data: np.ndarray) -> list[Detections]:
    """Run body + the exported tail (NMS included) in ONNX Runtime on prepared images, one at a time."""
    from runtime.onnx_session import create_session
    from runtime.qdq_twin import twin_if_needed

    model = twin_if_needed(join(parts, copy_model(body), {}))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "candidate.onnx"
        onnx.save(model, str(path))
        session = create_session(path)
        name = session.get_inputs()[0].name
        out = []
        for i in range(len(data)):
            num, boxes, scores, classes = session.run(None, {name: data[i:i + 1]})[:4]
            out.append(Detections.from_padded(int(num[0, 0]), boxes[0], scores[0], classes[0]))
    return out


def copy_model(model: onnx.ModelProto) -> onnx.ModelProto:
    clone = onnx.ModelProto()
    clone.CopyFrom(model)
    return clone


def error_of(parts: SplitGraph, reference: list[Detections], body: onnx.ModelProto, data: np.ndarray) -> float:
    return agreement(reference, detections_of(parts, body, data), SCORE_THRESHOLD).disagreement


@dataclass
class SensitivityReport:
    target: float
    full_error: float                                  # everything quantized
    group_errors: dict[str, float] = field(default_factory=dict)   # each group quantized alone
    excluded_groups: list[str] = field(default_factory=list)
    final_error: float = 0.0
    excluded_nodes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"all quantized: error {self.full_error:.4f} (target {self.target})"]
        for g, e in sorted(self.group_errors.items(), key=lambda kv: -kv[1]):
            out.append(f"  {g:24s} alone: {e:.4f}{'  -> kept out of INT8' if g in self.excluded_groups else ''}")
        out.append(f"final: error {self.final_error:.4f} with {len(self.excluded_groups)} group(s) out of INT8")
        return out


def find_exclusions(parts: SplitGraph, calib: np.ndarray, holdout: np.ndarray, method: str, target: float,
                    max_groups: int = 6, candidates: list[str] | None = None
                    ) -> tuple[SensitivityReport, onnx.ModelProto]:
    """Greedy search over the groups (or only `candidates`); returns the report and the final body."""
    logger.info(f"sensitivity: FP32 reference on {len(holdout)} held-out images, then the fully quantized body "
                f"({len(calib)} calibration images)")
    reference = detections_of(parts, parts.body, holdout)
    full = quantize_body(parts, calib, method, [])
    report = SensitivityReport(target, error_of(parts, reference, full, holdout))
    logger.info(f"sensitivity: all quantized -> error {report.full_error:.4f} (target {target})")
    report.final_error = report.full_error
    if report.full_error <= target:
        return report, full
    groups = {g: names for g, names in groups_of(parts.body).items()
              if g != "other" and (candidates is None or g in candidates)}
    with progress_bar("sensitivity", len(groups), "trial") as bar:
        for i, (group, names) in enumerate(groups.items(), start=1):
            alone = quantize_body(parts, calib, method, [], only=names)
            report.group_errors[group] = error_of(parts, reference, alone, holdout)
            logger.info(f"sensitivity [{i}/{len(groups)}] {group}: {report.group_errors[group]:.4f}")
            bar.update()
    body = full
    for group in sorted(report.group_errors, key=lambda g: -report.group_errors[g])[:max_groups]:
        report.excluded_groups.append(group)
        report.excluded_nodes = [n for g in report.excluded_groups for n in groups[g]]
        body = quantize_body(parts, calib, method, report.excluded_nodes)
        report.final_error = error_of(parts, reference, body, holdout)
        logger.info(f"sensitivity: keeping {group} out of INT8 -> error {report.final_error:.4f}")
        if report.final_error <= target:
            break
    return report, body
