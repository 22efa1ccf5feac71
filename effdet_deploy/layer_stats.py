"""Per-tensor error statistics for `compare --layers`, accumulated image by image so that memory does not grow
with the number of images: only a few running sums per tensor are kept, never the tensors themselves.

Metrics (reference r, target g, error d = g - r, over every element of every image):
- max abs error: max |d|;
- mean relative error: sum |d| / sum |r| (relative L1: a per-element ratio explodes where r is near 0, which
  most activations after swish are);
- cosine similarity: r.g / (|r| |g|);
- SNR dB: 10 log10(sum r^2 / sum d^2), capped at SNR_CAP (identical tensors).
Error growth of a tensor: the SNR its inputs arrive with (the worst of them) minus its own, in dB: how much a
node adds to the error it was given, both counted at most EXACT_DB. A node fed by the network input (identical in
both runs) starts from EXACT_DB.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SNR_CAP = 200.0       # dB reported for an error of exactly zero
EXACT_DB = 100.0      # growth counts SNR above this as exact (FP32 rounding alone is ~140 dB)


@dataclass(frozen=True)
class LayerStats:
    max_abs: float
    mean_rel: float
    cosine: float
    snr_db: float
    elements: int


class LayerAccumulator:
    """Running sums of one tensor over images (float64)."""

    __slots__ = ("n", "max_abs", "sum_abs_d", "sum_abs_r", "dot", "rr", "gg", "dd")

    def __init__(self) -> None:
        self.n = 0
        self.max_abs = self.sum_abs_d = self.sum_abs_r = self.dot = self.rr = self.gg = self.dd = 0.0

    def add(self, ref: np.ndarray, got: np.ndarray) -> None:
        r = np.asarray(ref, np.float32).ravel()
        g = np.asarray(got, np.float32).ravel()
        if r.shape != g.shape:
            raise ValueError(f"shapes differ: {ref.shape} vs {got.shape}")
        if not r.size:
            return
        d = g - r                 # float32 throughout: numpy's pairwise sums keep ~1e-7 relative accuracy, and
        ad = np.abs(d)            # float64 copies cost 15x the time (33.6M elements per image on D0 at 256)
        self.n += r.size
        self.max_abs = max(self.max_abs, float(ad.max()))
        self.sum_abs_d += float(ad.sum())
        self.sum_abs_r += float(np.abs(r).sum())
        self.dot += float((r * g).sum())
        self.rr += float((r * r).sum())
        self.gg += float((g * g).sum())
        self.dd += float((d * d).sum())

    def stats(self) -> LayerStats:
        denom = math.sqrt(self.rr * self.gg)
        cosine = self.dot / denom if denom else float(self.rr == self.gg)
        mean_rel = self.sum_abs_d / self.sum_abs_r if self.sum_abs_r else (0.0 if not self.sum_abs_d else math.inf)
        return LayerStats(self.max_abs, mean_rel, float(cosine), snr_db(self.rr, self.dd), self.n)


def snr_db(signal: float, noise: float) -> float:
    """10 log10(signal / noise), SNR_CAP for no noise, -SNR_CAP for noise on a silent signal."""
    if noise <= 0:
        return SNR_CAP
    if signal <= 0:
        return -SNR_CAP
    return max(-SNR_CAP, min(SNR_CAP, 10 * math.log10(signal / noise)))


def over_tolerance(stats: LayerStats, limits: dict[str, float | None]) -> list[str]:
    """'label value < limit' for each layer limit (runtime/parity.py TOLERANCES: layer_snr_db, layer_cosine, and
    layer_rel from --rtol) missed."""
    out = []
    snr_limit, cos_limit, rel_limit = limits.get("layer_snr_db"), limits.get("layer_cosine"), limits.get("layer_rel")
    if snr_limit is not None and stats.snr_db < snr_limit:
        out.append(f"SNR {stats.snr_db:.1f} dB < {snr_limit:g}")
    if cos_limit is not None and stats.cosine < cos_limit:
        out.append(f"cosine {stats.cosine:.6f} < {cos_limit:g}")
    if rel_limit is not None and stats.mean_rel > rel_limit:
        out.append(f"mean rel {stats.mean_rel:.3g} > {rel_limit:g}")
    return out


def growth_db(own: LayerStats, inputs: list[LayerStats]) -> float:
    """SNR lost at this tensor: worst input SNR (SNR_CAP without compared inputs) minus its own."""
    arriving = min((s.snr_db for s in inputs), default=SNR_CAP)
    return min(arriving, EXACT_DB) - min(own.snr_db, EXACT_DB)
