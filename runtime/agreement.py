"""Detection-level agreement between two result sets (reference vs target): what FP16/INT8/TensorRT
parity means for a detector. Greedy matching by score, same class, IoU >= 0.5 (as COCO's matcher)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from runtime.boxes import box_iou
from runtime.result import Detections


@dataclass(frozen=True)
class Agreement:
    reference: int          # detections in the reference
    target: int             # detections in the target
    matched: int
    mean_iou: float         # over matches (1.0 when nothing matched and nothing was expected)
    mean_score_delta: float  # |score difference| over matches
    max_score_delta: float

    @property
    def precision(self) -> float:
        return self.matched / self.target if self.target else 1.0

    @property
    def recall(self) -> float:
        return self.matched / self.reference if self.reference else 1.0

    @property
    def f1(self) -> float:
        total = self.reference + self.target
        return 2 * self.matched / total if total else 1.0

    @property
    def disagreement(self) -> float:
        """One number, 0 = identical: (1 - F1) + mean |score delta| + (1 - mean IoU)."""
        return (1 - self.f1) + self.mean_score_delta + (1 - self.mean_iou)


def match_pairs(ref: Detections, got: Detections, iou_threshold: float) -> list[tuple[int, int, float]]:
    """(ref index, got index, IoU) of greedy matches: highest reference score first, same class."""
    iou = box_iou(ref.boxes, got.boxes) if len(ref) and len(got) else np.zeros((len(ref), len(got)))
    used: set[int] = set()
    pairs = []
    for i in np.argsort(-ref.scores, kind="stable"):
        cand = [(iou[i, j], j) for j in range(len(got)) if j not in used and got.classes[j] == ref.classes[i]
                and iou[i, j] >= iou_threshold]
        if cand:
            best, j = max(cand)
            used.add(j)
            pairs.append((int(i), int(j), float(best)))
    return pairs


def agreement(reference: Sequence[Detections], target: Sequence[Detections], score_threshold: float = 0.0,
              iou_threshold: float = 0.5) -> Agreement:
    """Agreement over images; detections below score_threshold are ignored on both sides."""
    n_ref = n_tgt = 0
    ious: list[float] = []
    deltas: list[float] = []
    for ref, got in zip(reference, target):
        ref, got = above(ref, score_threshold), above(got, score_threshold)
        n_ref, n_tgt = n_ref + len(ref), n_tgt + len(got)
        for i, j, v in match_pairs(ref, got, iou_threshold):
            ious.append(v)
            deltas.append(abs(float(ref.scores[i]) - float(got.scores[j])))
    return Agreement(n_ref, n_tgt, len(ious), float(np.mean(ious)) if ious else 1.0,
                     float(np.mean(deltas)) if deltas else 0.0, float(np.max(deltas)) if deltas else 0.0)


def above(d: Detections, threshold: float) -> Detections:
    """The detections scoring >= threshold."""
    keep = d.scores >= threshold
    return Detections(d.boxes[keep], d.scores[keep], d.classes[keep])
