"""Parity of a target model file against a reference, at two levels, as Polygraphy compares runners:

- raw: the network's outputs before thresholding and NMS (decoded boxes [N,4], sigmoid scores [N,C] for
  every anchor) on the same inputs - compared even where neither file detects anything;
- detections: what users see (matched boxes/scores above SCORE_FLOOR, F1, IoU).

Small functions returning result objects (truthy = PASS, numbers inside). The verdict is PASS, FAIL or
INCONCLUSIVE (DESIGN §4): a level that fails is FAIL; fewer than MIN_MATCHED matched detections is too
little evidence for a detection-level PASS, so it is INCONCLUSIVE with the reason - never PASS on nothing.
Default tolerances per precision live in TOLERANCES; --atol/--rtol override the score ones at every level
(`tolerances`): atol = max |score error| (scores are probabilities, the same unit before and after NMS), rtol =
mean relative score error (raw, detections) and mean relative error of each tensor (layers). Boxes keep their
pixel limits (a score tolerance in pixels would mean nothing).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Iterable, Sequence

import numpy as np

from runtime.agreement import Agreement, above, agreement, match_pairs
from runtime.result import Detections
from runtime.thresholds import DEFAULT_SCORE_THRESHOLD

# precision -> limits (None = not checked); the one place parity tolerances live (compare, pipeline, tests).
# Detections: boxes in original-image pixels; F1 and IoU at IoU 0.5, same class, score >= SCORE_FLOOR; rtol
# bounds the mean relative score error and score_delta the mean absolute score error of matched detections.
# INT8 is judged at detection level only: single-score outliers are expected from 8-bit activations.
# Raw outputs over all anchors: raw_score_atol = max |score error|, raw_cosine = min cosine similarity of
# boxes and of scores, raw_box_mean = mean |box corner error| in network-input pixels per 512 pixels of input
# (box errors grow with the boxes, i.e. with the input size: the limit is scaled by max(H, W) / 512). Measured
# on shapes_d0 at 256 on 6 scenes (CPU, ORT 1.24): FP32 1.2e-6 / 1.0000000 / 3e-6 px, FP16 7.7e-4 / 1.000000 /
# 0.003 px, INT8 0.47 / 0.984 / 0.81 px; one backbone conv x-3 in FP32: 6.9e-3 / 0.99992 / 0.29 px (must fail).
# On a GPU (H200, PyTorch cuDNN, benchmarks/gpu_raw_error.py, 12 scenes; not TensorRT), against CPU FP32, at
# 256 / 512: FP32 with TF32 convolutions (TensorRT's FP32 default on Ampere and later) raw score error <= 6.6e-4
# / 1.15e-3, box mean 0.0029 / 0.053 px, cosines >= 0.9999992, matched detections box <= 0.013 px, score <=
# 6.1e-4; FP16 (fused model in half) raw 1.9e-3 / 2.3e-3, 0.0075 / 0.090 px, cosines >= 0.9999952, detections
# box <= 0.61 / 0.029 px, score <= 1.3e-3. The old limits failed or nearly failed correct runs (FP32 raw score
# 1e-3, FP32 box mean 0.1 px at 512, FP16 box mean 0.05 px, FP16 detection box 0.5 px); these leave >= 2.5x
# over the measurements, and the damaged conv still fails every raw check. One model measured: shapes_d0.
# --atol/--rtol (tolerances()): atol sets score_atol and raw_score_atol; rtol sets rtol, raw_rtol (mean of |d| / max(|r|,
# 1e-6) over every anchor x class; FP16 vs FP32 at 128 on 8 built-in scenes: 5.3e-4) and layer_rel (sum |d| / sum |r|
# per tensor, the scale-free relative error of effdet_deploy/layer_stats.py). raw_rtol and layer_rel have no default.
# Layers (`compare --layers`, every tensor of the network body, effdet_deploy/layer_stats.py): layer_snr_db = min
# SNR (10 log10 sum r^2 / sum (g - r)^2) and layer_cosine = min cosine per tensor. Measured on shapes_d0 at 256, 16
# built-in scenes (CPU, ORT 1.24), worst tensor / median: FP16 55.3 / 62.8 dB, cosine 0.9999986; INT8 (default,
# both forms) 11.9 / 18.0 dB, cosine 0.969 (box_net P7 convs, fed by the quantized BiFPN). The limits leave room
# for GPU math (TF32 convolutions: raw outputs >= 58 dB above) and stop a conv whose weights are off by 2% (34 dB).
TOLERANCES: dict[str, dict[str, float | None]] = {
    "fp32": {"f1": 0.99, "mean_iou": 0.99, "score_atol": 2e-3, "box_atol": 0.5, "rtol": 1e-3, "score_delta": None,
             "raw_score_atol": 3e-3, "raw_rtol": None, "raw_cosine": 0.99999, "raw_box_mean": 0.15,
             "layer_snr_db": 40.0, "layer_cosine": 0.9999, "layer_rel": None},
    "fp16": {"f1": 0.97, "mean_iou": 0.98, "score_atol": 1e-2, "box_atol": 1.5, "rtol": 1e-2, "score_delta": None,
             "raw_score_atol": 1e-2, "raw_rtol": None, "raw_cosine": 0.9999, "raw_box_mean": 0.25,
             "layer_snr_db": 35.0, "layer_cosine": 0.999, "layer_rel": None},
    "int8": {"f1": 0.90, "mean_iou": 0.90, "score_atol": None, "box_atol": None, "rtol": None, "score_delta": 0.1,
             "raw_score_atol": None, "raw_rtol": None, "raw_cosine": 0.95, "raw_box_mean": 4.0,
             "layer_snr_db": 10.0, "layer_cosine": 0.95, "layer_rel": None},
}
SCORE_FLOOR = DEFAULT_SCORE_THRESHOLD   # detections compared: the same default users see (runtime/thresholds.py)
MIN_MATCHED = 10      # matched detections (all images together) below which the detection level is INCONCLUSIVE


@dataclass(frozen=True)
class TensorStats:
    """Errors of one output (boxes or scores): absolute, relative (to |reference|, floor 1e-6), cosine."""

    max_abs: float
    mean_abs: float
    max_rel: float
    mean_rel: float
    cosine: float


class StatsAccumulator:
    """TensorStats over many arrays without holding them all (raw outputs are [N,C] per image)."""

    def __init__(self) -> None:
        self.n = 0
        self.max_abs = self.sum_abs = self.max_rel = self.sum_rel = self.dot = self.rr = self.gg = 0.0

    def add(self, ref: np.ndarray, got: np.ndarray) -> None:
        r, g = ref.astype(np.float64).ravel(), got.astype(np.float64).ravel()
        if r.size == 0:
            return
        diff = np.abs(r - g)
        rel = diff / np.maximum(np.abs(r), 1e-6)
        self.n += r.size
        self.max_abs, self.sum_abs = max(self.max_abs, float(diff.max())), self.sum_abs + float(diff.sum())
        self.max_rel, self.sum_rel = max(self.max_rel, float(rel.max())), self.sum_rel + float(rel.sum())
        self.dot, self.rr, self.gg = self.dot + float(r @ g), self.rr + float(r @ r), self.gg + float(g @ g)

    def stats(self) -> TensorStats:
        if not self.n:
            return TensorStats(0.0, 0.0, 0.0, 0.0, 1.0)
        denom = np.sqrt(self.rr * self.gg)
        cosine = self.dot / denom if denom else float(self.rr == self.gg)
        return TensorStats(self.max_abs, self.sum_abs / self.n, self.max_rel, self.sum_rel / self.n, float(cosine))


def tensor_stats(ref: np.ndarray, got: np.ndarray) -> TensorStats:
    acc = StatsAccumulator()
    acc.add(ref, got)
    return acc.stats()


@dataclass(frozen=True)
class Check:
    """One number judged against its limit: value None = nothing was compared (n/a, never a failure); limit
    None = not checked (at this precision, without --atol/--rtol). upper: the limit is a maximum, else a minimum."""

    label: str
    value: float | None
    limit: float | None
    upper: bool = True
    digits: str = ".3g"

    @property
    def failed(self) -> bool:
        if self.value is None or self.limit is None:
            return False
        return self.value > self.limit if self.upper else self.value < self.limit

    def failure(self) -> str:
        return f"{self.label} {self.value:.6g} {'>' if self.upper else '<'} {self.limit:.6g}"

    def text(self) -> str:
        """'label value (<= limit)' for people: the number beside the tolerance it was judged by; n/a where
        nothing was compared."""
        value = "n/a" if self.value is None else format(self.value, self.digits)
        return f"{self.label} {value}" + ("" if self.limit is None else f" ({'<=' if self.upper else '>='} {self.limit:g})")

    def to_json(self) -> dict[str, object]:
        return {"label": self.label, "value": self.value, "limit": self.limit, "bound": "max" if self.upper else "min",
                "pass": not self.failed}


@dataclass
class RawParity:
    """Raw-output level: decoded boxes and sigmoid scores of every anchor, on the same inputs."""

    boxes: TensorStats
    scores: TensorStats
    images: int
    anchors: int
    failures: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)

    def __bool__(self) -> bool:
        return not self.failures


def compare_raw(pairs: Iterable[tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]],
                limits: dict[str, float | None], input_size: tuple[int, int]) -> RawParity:
    """pairs of ((ref boxes [N,4], ref scores [N,C]), (target boxes, target scores)) per image -> RawParity.
    input_size: the network input (H, W); the mean box error limit is per 512 pixels of it. No pairs: every
    value n/a (nothing compared), never a PASS by default."""
    boxes, scores = StatsAccumulator(), StatsAccumulator()
    images = anchors = 0
    for (rb, rs), (gb, gs) in pairs:
        boxes.add(rb, gb)
        scores.add(rs, gs)
        images, anchors = images + 1, rb.shape[0]
    result = RawParity(boxes.stats(), scores.stats(), images, anchors)
    some = (lambda v: v) if images else (lambda v: None)
    result.checks = [
        Check("max score error", some(result.scores.max_abs), limits.get("raw_score_atol")),
        Check("mean relative score error", some(result.scores.mean_rel), limits.get("raw_rtol")),
        Check("score cosine", some(result.scores.cosine), limits.get("raw_cosine"), False, ".7f"),
        Check("mean box error (px)", some(result.boxes.mean_abs), _scaled(limits.get("raw_box_mean"), input_size)),
        Check("box cosine", some(result.boxes.cosine), limits.get("raw_cosine"), False, ".7f")]
    result.failures = [f"raw {c.failure()}" for c in result.checks if c.failed]
    if not images:
        result.failures.append("raw outputs of no image compared")
    return result


def _scaled(per_512: float | None, input_size: tuple[int, int]) -> float | None:
    return None if per_512 is None else per_512 * max(input_size) / 512


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
    images: int = 0
    inconclusive: list[str] = field(default_factory=list)   # why the detection level proves nothing
    raw: RawParity | None = None
    raw_note: str = ""                                       # why there is no raw level
    warnings: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)         # the detection level's numbers and limits

    @property
    def verdict(self) -> str:
        """FAIL if any level failed, else INCONCLUSIVE if too little was compared, else PASS."""
        if self.failures or (self.raw is not None and not self.raw):
            return "FAIL"
        return "INCONCLUSIVE" if self.inconclusive else "PASS"

    def __bool__(self) -> bool:
        return self.verdict == "PASS"

    def add_raw(self, raw: RawParity | None, note: str = "") -> None:
        self.raw, self.raw_note = raw, note

    def reasons(self) -> list[str]:
        """What made the verdict: failures of both levels, else the inconclusive reasons."""
        failed = self.failures + (self.raw.failures if self.raw is not None else [])
        return failed or self.inconclusive

    def to_json(self) -> dict[str, object]:
        """Numbers of both levels; null where nothing was compared (no detection on either side: no F1; no match:
        no IoU, no score or box error), never a vacuous 1.0."""
        a, matched = self.agreement, self.agreement.matched > 0
        raw = None if self.raw is None else {"boxes": asdict(self.raw.boxes), "scores": asdict(self.raw.scores),
                                             "images": self.raw.images, "anchors": self.raw.anchors,
                                             "pass": bool(self.raw), "failures": self.raw.failures,
                                             "checks": [c.to_json() for c in self.raw.checks]}
        return {"target": self.target, "precision": self.precision, "verdict": self.verdict, "pass": bool(self),
                "failures": self.failures + (self.raw.failures if self.raw is not None else []),
                "inconclusive": self.inconclusive, "warnings": self.warnings, "images": self.images,
                "score_threshold": SCORE_FLOOR, "min_matched": MIN_MATCHED,
                "f1": a.f1 if a.reference + a.target else None, "precision_det": a.precision if a.target else None,
                "recall": a.recall if a.reference else None, "mean_iou": a.mean_iou if matched else None,
                "mean_score_delta": a.mean_score_delta if matched else None,
                "max_score_delta": a.max_score_delta if matched else None,
                "matched": a.matched, "reference_detections": a.reference, "target_detections": a.target,
                "boxes": asdict(self.boxes) if matched else None, "scores": asdict(self.scores) if matched else None,
                "limits": self.limits, "checks": [c.to_json() for c in self.checks], "worst_image": self.worst_image,
                "raw": raw, "raw_note": self.raw_note}


def matched_pairs(reference: Sequence[Detections], target: Sequence[Detections]) -> tuple[np.ndarray, ...]:
    """(ref boxes, got boxes, ref scores, got scores) of all matched detections above SCORE_FLOOR."""
    rb, gb, rs, gs = [], [], [], []
    for ref, got in zip(reference, target):
        ref, got = above(ref, SCORE_FLOOR), above(got, SCORE_FLOOR)
        for i, j, _ in match_pairs(ref, got, 0.5):
            rb.append(ref.boxes[i]); gb.append(got.boxes[j]); rs.append(ref.scores[i]); gs.append(got.scores[j])
    as_arr = lambda xs, shape: np.asarray(xs, np.float32).reshape(shape)  # noqa: E731
    return as_arr(rb, (-1, 4)), as_arr(gb, (-1, 4)), as_arr(rs, (-1,)), as_arr(gs, (-1,))


def tolerances(precision: str, atol: float | None = None, rtol: float | None = None) -> dict[str, float | None]:
    """The precision's limits with --atol/--rtol applied at every level: atol = max |score error| of matched
    detections and of every anchor's raw scores; rtol = mean relative score error at both levels and mean relative
    error (sum |d| / sum |r|) of each tensor with --layers. Box limits stay in pixels, per precision."""
    limits = dict(TOLERANCES.get(precision, TOLERANCES["fp32"]))
    if atol is not None:
        limits["score_atol"] = limits["raw_score_atol"] = atol
    if rtol is not None:
        limits["rtol"] = limits["raw_rtol"] = limits["layer_rel"] = rtol
    return limits


def compare_detections(name: str, precision: str, reference: Sequence[Detections], target: Sequence[Detections],
                       atol: float | None = None, rtol: float | None = None, builtin_images: bool = True
                       ) -> ParityResult:
    """Detection agreement + matched box/score errors, judged against the precision's limits. builtin_images:
    whether the user gave no images (what the INCONCLUSIVE reason advises)."""
    limits = tolerances(precision, atol, rtol)
    agree = agreement(reference, target, SCORE_FLOOR)
    rb, gb, rs, gs = matched_pairs(reference, target)
    result = ParityResult(name, precision, agree, tensor_stats(rb, gb), tensor_stats(rs, gs), limits,
                          images=len(reference))
    result.checks = detection_checks(result, limits)
    result.failures = [c.failure() for c in result.checks if c.failed]
    if agree.matched < MIN_MATCHED:
        advice = ("give --images with pictures on which the model detects objects" if builtin_images else
                  "the images given show too few objects this model detects: use pictures with more of them")
        result.inconclusive.append(
            f"only {agree.matched} matched detection(s) at score >= {SCORE_FLOOR} on {len(reference)} image(s) "
            f"(reference {agree.reference}, target {agree.target}; at least {MIN_MATCHED} needed): {advice}")
    per_image = [agreement([r], [t], SCORE_FLOOR).disagreement for r, t in zip(reference, target)]
    result.worst_image = int(np.argmax(per_image)) if per_image else 0
    return result


def detection_checks(result: ParityResult, limits: dict[str, float | None]) -> list[Check]:
    """The detection level's numbers with their limits; n/a (None) where nothing was compared: F1 without a
    detection on either side, IoU and errors without a matched pair."""
    a = result.agreement
    some = (lambda v: v) if a.matched else (lambda v: None)
    return [Check("F1", a.f1 if a.reference + a.target else None, limits["f1"], False, ".3f"),
            Check("mean IoU", some(a.mean_iou), limits["mean_iou"], False, ".3f"),
            Check("max score error", some(result.scores.max_abs), limits["score_atol"]),
            Check("mean relative score error", some(result.scores.mean_rel), limits["rtol"]),
            Check("max box error (px)", some(result.boxes.max_abs), limits["box_atol"]),
            Check("mean score delta", some(a.mean_score_delta), limits["score_delta"])]
