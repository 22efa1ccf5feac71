"""Parity of a target model file against a reference, at the level users care about: detections.

Small functions returning result objects (truthy = pass, numbers inside). Default tolerances per
precision live in TOLERANCES; --atol/--rtol override the box/score ones.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np

from runtime.agreement import Agreement, above, agreement, match_pairs
from runtime.result import Detections

# precision -> limits (None = not checked); the one place parity tolerances live (compare, pipeline, tests).
# Boxes in original-image pixels; F1 and IoU at IoU 0.5, same class, score >= SCORE_FLOOR; rtol bounds the
# mean relative score error and score_delta the mean absolute score error of matched detections.
# INT8 is judged at detection level only: single-score outliers are expected from 8-bit activations.
TOLERANCES: dict[str, dict[str, float | None]] = {
    "fp32": {"f1": 0.99, "mean_iou": 0.99, "score_atol": 1e-3, "box_atol": 0.5, "rtol": 1e-3, "score_delta": None},
    "fp16": {"f1": 0.97, "mean_iou": 0.98, "score_atol": 1e-2, "box_atol": 0.5, "rtol": 1e-2, "score_delta": None},
    "int8": {"f1": 0.90, "mean_iou": 0.90, "score_atol": None, "box_atol": None, "rtol": None, "score_delta": 0.1},
}
SCORE_FLOOR = 0.3


@dataclass(frozen=True)
class TensorStats:
    """Errors over matched detections of one output (boxes or scores)."""

    max_abs: float
    mean_abs: float
    max_rel: float
    mean_rel: float
    cosine: float


@dataclass
class ParityResult:
    target: str
    precision: str
    agreement: Agreement
    boxes: TensorStats
    scores: TensorStats
    limits: dict[str, float | None]
    failures: list[str] = field(default_factory=list)
    worst_image: int = 0

    def __bool__(self) -> bool:
        return not self.failures

    def to_json(self) -> dict[str, object]:
        a = self.agreement
        return {"target": self.target, "precision": self.precision, "pass": bool(self), "failures": self.failures,
                "f1": a.f1, "precision_det": a.precision, "recall": a.recall, "mean_iou": a.mean_iou,
                "mean_score_delta": a.mean_score_delta, "max_score_delta": a.max_score_delta,
                "matched": a.matched, "reference_detections": a.reference, "target_detections": a.target,
                "boxes": asdict(self.boxes), "scores": asdict(self.scores), "limits": self.limits,
                "worst_image": self.worst_image}


def tensor_stats(ref: np.ndarray, got: np.ndarray) -> TensorStats:
    if ref.size == 0:
        return TensorStats(0.0, 0.0, 0.0, 0.0, 1.0)
    r, g = ref.astype(np.float64).ravel(), got.astype(np.float64).ravel()
    diff = np.abs(r - g)
    rel = diff / np.maximum(np.abs(r), 1e-6)
    denom = np.linalg.norm(r) * np.linalg.norm(g)
    return TensorStats(float(diff.max()), float(diff.mean()), float(rel.max()), float(rel.mean()),
                       float(r @ g / denom) if denom else 1.0)


def matched_pairs(reference: Sequence[Detections], target: Sequence[Detections]) -> tuple[np.ndarray, ...]:
    """(ref boxes, got boxes, ref scores, got scores) of all matched detections above SCORE_FLOOR."""
    rb, gb, rs, gs = [], [], [], []
    for ref, got in zip(reference, target):
        ref, got = above(ref, SCORE_FLOOR), above(got, SCORE_FLOOR)
        for i, j, _ in match_pairs(ref, got, 0.5):
            rb.append(ref.boxes[i]); gb.append(got.boxes[j]); rs.append(ref.scores[i]); gs.append(got.scores[j])
    as_arr = lambda xs, shape: np.asarray(xs, np.float32).reshape(shape)  # noqa: E731
    return as_arr(rb, (-1, 4)), as_arr(gb, (-1, 4)), as_arr(rs, (-1,)), as_arr(gs, (-1,))


def compare_detections(name: str, precision: str, reference: Sequence[Detections], target: Sequence[Detections],
                       atol: float | None = None, rtol: float | None = None) -> ParityResult:
    """Detection agreement + matched box/score errors, judged against the precision's limits."""
    limits = dict(TOLERANCES.get(precision, TOLERANCES["fp32"]))
    if atol is not None:
        limits["score_atol"] = atol
        limits["box_atol"] = max(limits["box_atol"] or 0.0, atol)
    if rtol is not None:
        limits["rtol"] = rtol
    agree = agreement(reference, target, SCORE_FLOOR)
    rb, gb, rs, gs = matched_pairs(reference, target)
    result = ParityResult(name, precision, agree, tensor_stats(rb, gb), tensor_stats(rs, gs), limits)
    checks = [("F1", agree.f1, limits["f1"], False), ("mean IoU", agree.mean_iou, limits["mean_iou"], False),
              ("max score error", result.scores.max_abs, limits["score_atol"], True),
              ("max box error (px)", result.boxes.max_abs, limits["box_atol"], True),
              ("mean relative score error", result.scores.mean_rel, limits["rtol"], True),
              ("mean score delta", agree.mean_score_delta, limits["score_delta"], True)]
    for label, value, limit, upper in checks:
        if limit is None:
            continue
        if (value > limit) if upper else (value < limit):
            result.failures.append(f"{label} {value:.4g} {'>' if upper else '<'} {limit:.4g}")
    per_image = [agreement([r], [t], SCORE_FLOOR).disagreement for r, t in zip(reference, target)]
    result.worst_image = int(np.argmax(per_image)) if per_image else 0
    return result
