"""`compare --layers`: every intermediate tensor of a target against the FP32 reference, image by image, with
the first tensor over tolerance (and the ONNX node that produced it) and the tensors that add the most error.

Tolerances: runtime/parity.py TOLERANCES (layer_snr_db, layer_cosine per precision), the place `compare` reads
all its limits from. Memory: one image's tensors of both runs at a time, reduced to running sums
(effdet_deploy/layer_stats.py) before the next image.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from effdet_deploy.layer_runners import Outputs
from effdet_deploy.layer_stats import LayerAccumulator, LayerStats, growth_db, over_tolerance
from effdet_deploy.layer_tensors import LayerTensor

GROWTH_TOP = 10


@dataclass
class LayerReport:
    """Per-tensor statistics of one target, in the reference's topological order."""

    reference: str
    target: str
    precision: str
    limits: dict[str, float | None]
    tensors: list[LayerTensor]
    stats: dict[str, LayerStats] = field(default_factory=dict)
    target_names: dict[str, str] = field(default_factory=dict)
    images: int = 0
    seconds: float = 0.0

    @property
    def compared(self) -> list[LayerTensor]:
        return [t for t in self.tensors if t.name in self.stats]

    def first_divergence(self) -> tuple[LayerTensor, list[str]] | None:
        """The first compared tensor (graph order) over tolerance, with what it missed."""
        for t in self.compared:
            missed = over_tolerance(self.stats[t.name], self.limits)
            if missed:
                return t, missed
        return None

    def growth(self) -> dict[str, float]:
        """tensor -> SNR lost at it (dB) relative to the worst of its compared inputs."""
        return {t.name: growth_db(self.stats[t.name], [self.stats[i] for i in t.inputs if i in self.stats])
                for t in self.compared}

    def top_growth(self, k: int = GROWTH_TOP) -> list[tuple[LayerTensor, float]]:
        grown = self.growth()
        return sorted(((t, grown[t.name]) for t in self.compared), key=lambda tg: -tg[1])[:k]

    def to_json(self) -> dict[str, Any]:
        first = self.first_divergence()
        grown = self.growth()
        rows = [{**t.to_json(), "target_tensor": self.target_names.get(t.name),
                 **({"max_abs": s.max_abs, "mean_rel": s.mean_rel, "cosine": s.cosine, "snr_db": s.snr_db,
                     "growth_db": grown[t.name], "over_tolerance": over_tolerance(s, self.limits)}
                    if (s := self.stats.get(t.name)) else {"compared": False})}
                for t in self.tensors]
        return {"reference": self.reference, "target": self.target, "precision": self.precision,
                "images": self.images, "seconds": round(self.seconds, 2), "limits": self.limits,
                "compared": len(self.compared), "tensors_in_reference": len(self.tensors),
                "first_divergence": None if first is None else
                {"tensor": first[0].name, "node": first[0].node, "op": first[0].op, "group": first[0].group,
                 "depth": first[0].depth, "missed": first[1]},
                "largest_growth": [{"tensor": t.name, "node": t.node, "group": t.group, "growth_db": g}
                                   for t, g in self.top_growth()],
                "tensors": rows}


def accumulate(report: LayerReport, pairs: Iterable[tuple[Outputs, Outputs]]) -> LayerReport:
    """Fold (reference tensors, target tensors) of each image into the report's statistics."""
    t0 = time.perf_counter()
    wanted = [(t.name, report.target_names[t.name]) for t in report.tensors if t.name in report.target_names]
    acc = {ref: LayerAccumulator() for ref, _ in wanted}
    for ref_out, got_out in pairs:
        for ref, got in wanted:
            if ref in ref_out and got in got_out:
                acc[ref].add(ref_out[ref], got_out[got])
        report.images += 1
        ref_out.clear()               # emptied, not just dropped: a suspended run still holds its last dict, and
        got_out.clear()               # its tensors must not be alive while the next image runs (D0 at 512: ~1 GB)
    report.stats = {name: a.stats() for name, a in acc.items() if a.n}
    report.seconds += time.perf_counter() - t0
    return report


def zipped(reference: Iterator[Outputs], target: Iterator[Outputs]) -> Iterator[tuple[Outputs, Outputs]]:
    """Pairs image by image; each dict is dropped before the next image is run."""
    for ref_out in reference:
        pair = ref_out, next(target)
        del ref_out
        yield pair
        del pair                      # released before the next image's tensors are computed


def table_lines(report: LayerReport, every: bool = False) -> list[str]:
    """The table (every tensor with `every`, else the over-tolerance ones and the growth list), then a summary."""
    limits = report.limits
    lines = [f"{'depth':>5s} {'group':18s} {'tensor':60s} {'max abs':>9s} {'mean rel':>9s} {'cosine':>9s} "
             f"{'SNR dB':>7s}"]
    shown = report.compared if every else [t for t in report.compared
                                           if over_tolerance(report.stats[t.name], limits)][:20]
    for t in shown:
        s = report.stats[t.name]
        lines.append(f"{t.depth:5d} {t.group[:18]:18s} {_short(t.name, 60):60s} {s.max_abs:9.3g} {s.mean_rel:9.3g} "
                     f"{s.cosine:9.6f} {s.snr_db:7.1f}")
    lines.append(f"largest error growth (SNR lost at the tensor vs its inputs):")
    lines += [f"  {g:6.1f} dB  {t.group:18s} {t.node}" for t, g in report.top_growth()]
    first = report.first_divergence()
    lines.append(f"{len(report.compared)} of {len(report.tensors)} tensors compared on {report.images} image(s); "
                 f"limits SNR >= {limits.get('layer_snr_db')} dB, cosine >= {limits.get('layer_cosine')}"
                 + (f", mean rel <= {limits['layer_rel']:g} (--rtol)" if limits.get("layer_rel") is not None else ""))
    lines.append("first divergence: none" if first is None else
                 f"first divergence: {first[0].name} (node {first[0].node}, {first[0].op}, {first[0].group}, "
                 f"depth {first[0].depth}): {'; '.join(first[1])}")
    return lines


def _short(name: str, width: int) -> str:
    return name if len(name) <= width else "..." + name[-(width - 3):]


def default_json_path(output: str) -> Path:
    return Path(output) / "layers.json"
