"""`compare --layers --suggest-exclude FILE`: the smallest set of node groups (calibration/groups.py, the
sensitivity groups) whose exclusion from INT8 brings the network outputs within a target, as
`polygraphy debug precision` bisects layers: candidates ordered by the error they add (the layer report's growth,
summed per group), then a bisection on how many of them to take out of INT8 (each try: the INT8 file with those
groups' Q/DQ removed in memory, effdet_deploy/int8_bypass.py, run on the same images). Metric: the worst SNR (dB)
over the tensors the post-processing reads (class and box maps of every level) against the FP32 reference.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from effdet_deploy.layer_compare import LayerReport
from effdet_deploy.layer_stats import LayerAccumulator
from runtime.errors import DeployError

DEFAULT_GAIN_DB = 3.0          # default target: the file's own worst output SNR + this (half the error power)


@dataclass
class Bisection:
    candidates: list[str]
    tried: dict[int, float] = field(default_factory=dict)     # groups taken out -> worst output SNR


def group_damage(report: LayerReport) -> dict[str, float]:
    """node group -> SNR the group's tensors lose (positive growth summed), for ordering the candidates."""
    damage: dict[str, float] = {}
    for tensor, grown in report.growth().items():
        group = next(t.group for t in report.compared if t.name == tensor)
        damage[group] = damage.get(group, 0.0) + max(grown, 0.0)
    return damage


def suggest_exclude(args: argparse.Namespace, layer_ref: Any, report: LayerReport, images: Sequence[np.ndarray]) -> Path:
    """Bisect, print each try, write the exclude file; returns its path."""
    import onnx

    from calibration.exclude_file import write_exclude_file
    from calibration.groups import groups_of
    from effdet_deploy.layer_tensors import body_of

    if report.precision != "int8" or Path(report.target).suffix != ".onnx":
        raise DeployError(f"{report.target}: --suggest-exclude needs an INT8 ONNX target (precision {report.precision})")
    if args.reference is None or Path(args.reference).suffix != ".onnx":
        raise DeployError("--suggest-exclude needs --reference FP32.onnx (the weights of excluded layers come from it)")
    reference, target = onnx.load(args.reference), onnx.load(report.target)
    groups = {g: n for g, n in groups_of(body_of(reference)).items() if g != "other"}
    already = set(json.loads(dict((p.key, p.value) for p in target.metadata_props).get("excluded_nodes", "[]")))
    damage = group_damage(report)
    candidates = sorted((g for g in groups if damage.get(g, 0) > 0 and not set(groups[g]) <= already),
                        key=lambda g: -damage[g])
    measure = OutputMeasure(reference, target, images, args.reference, getattr(args, "threads", None))
    search = Bisection(candidates)
    before = search.tried[0] = measure(set())
    goal = args.suggest_target if args.suggest_target is not None else before + DEFAULT_GAIN_DB
    print(f"suggest-exclude: worst output SNR {before:.2f} dB, target {goal:.2f} dB, {len(candidates)} candidate "
          "group(s), most damaging first: " + ", ".join(candidates[:6]) + (" ..." if len(candidates) > 6 else ""))
    k = bisect(search, lambda n: measure({x for g in candidates[:n] for x in groups[g]}), goal)
    chosen = candidates[:k]
    nodes = sorted(already) + [n for g in chosen for n in groups[g] if n not in already]
    measured = {"metric": "worst SNR (dB) of the network outputs vs FP32", "images": len(images),
                "before_db": before, "after_db": search.tried[k], "target_db": goal, "analysed_file": report.target,
                "tried": {str(n): db for n, db in sorted(search.tried.items())}}
    path = write_exclude_file(args.suggest_exclude, str(measure.model_name), chosen, nodes, measured)
    reached = "reaches" if search.tried[k] >= goal else "does not reach (every candidate out of INT8)"
    print(f"suggest-exclude: {len(chosen)} group(s) out of INT8 ({', '.join(chosen) or 'none'}): worst output SNR "
          f"{before:.2f} -> {search.tried[k]:.2f} dB, {reached} the target; wrote {path} "
          f"(quantize --exclude @{path})")
    return path


def bisect(search: Bisection, measure: Any, goal: float) -> int:
    """Smallest n in 0..len(candidates) whose measure reaches `goal` (assumed monotonic, as Polygraphy's bisection);
    len(candidates) when none does."""
    lo, hi = 0, len(search.candidates)
    if search.tried[0] >= goal or hi == 0:
        return 0
    search.tried[hi] = measure(hi)
    print(f"  all {hi} candidate group(s) out of INT8: {search.tried[hi]:.2f} dB")
    if search.tried[hi] < goal:
        return hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        search.tried[mid] = measure(mid)
        print(f"  {mid} group(s) out of INT8: {search.tried[mid]:.2f} dB")
        lo, hi = (lo, mid) if search.tried[mid] >= goal else (mid, hi)
    return hi


class OutputMeasure:
    """Worst SNR of the network outputs of the INT8 file with given nodes out of INT8, on fixed images."""

    def __init__(self, reference: Any, target: Any, images: Sequence[np.ndarray], source: str,
                 threads: int | None = None) -> None:
        from effdet_deploy.layer_runners import model_layer_run
        from effdet_deploy.layer_tensors import body_of, reference_tensors

        body = body_of(reference)
        outputs = {o.name for o in body.graph.output}
        self.tensors = [t for t in reference_tensors(body) if t.name in outputs]
        self.threads = threads                              # --threads: ONNX Runtime intra-op threads of each try
        run = model_layer_run(reference, lambda m: [t.name for t in self.tensors], source, threads)
        self.model_name = run.info.model
        self.expected = list(run.per_image(images))        # the outputs only: [N, A*C] maps, small
        self.reference, self.target, self.images = reference, target, images

    def __call__(self, nodes: set[str]) -> float:
        from effdet_deploy.int8_bypass import without_int8
        from effdet_deploy.layer_runners import model_layer_run
        from effdet_deploy.layer_tensors import target_names

        model = without_int8(self.target, self.reference, nodes) if nodes else self.target
        mapping: dict[str, str] = {}

        def wanted(m: Any) -> list[str]:
            mapping.update(target_names(self.tensors, m))
            return list(dict.fromkeys(mapping.values()))
        run = model_layer_run(model, wanted, "INT8 candidate", self.threads)
        acc = {t.name: LayerAccumulator() for t in self.tensors}
        for ref, got in zip(self.expected, run.per_image(self.images)):
            for name, a in acc.items():
                a.add(ref[name], got[mapping[name]])
        return min(a.stats().snr_db for a in acc.values())
