"""trtexec-style timing: warm-up, then at least `iterations` runs and at least `duration` seconds;
throughput and latency percentiles per phase; a warning when timings are unstable (CV > 5%).
The clock is injectable so the statistics are tested on a fake clock."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

UNSTABLE_CV = 0.05
PERCENTILES = (90, 95, 99)


@dataclass(frozen=True)
class LatencyStats:
    """Milliseconds."""

    min: float
    mean: float
    median: float
    p90: float
    p95: float
    p99: float
    max: float
    std: float

    @property
    def cv(self) -> float:
        return self.std / self.mean if self.mean else 0.0


def latency_stats(samples_ms: list[float] | np.ndarray) -> LatencyStats:
    x = np.asarray(samples_ms, np.float64)
    p90, p95, p99 = (float(np.percentile(x, p)) for p in PERCENTILES)
    return LatencyStats(float(x.min()), float(x.mean()), float(np.median(x)), p90, p95, p99, float(x.max()),
                        float(x.std()))


@dataclass
class BenchResult:
    batch: int
    iterations: int
    wall_s: float
    total: LatencyStats                                   # end to end per iteration
    phases: dict[str, LatencyStats] = field(default_factory=dict)

    @property
    def throughput(self) -> float:
        """Images per second over the measured wall time."""
        return self.batch * self.iterations / self.wall_s if self.wall_s else 0.0

    @property
    def unstable(self) -> bool:
        return self.total.cv > UNSTABLE_CV

    def to_json(self) -> dict[str, object]:
        as_dict = lambda s: {**s.__dict__, "cv": s.cv}  # noqa: E731
        return {"batch": self.batch, "iterations": self.iterations, "wall_s": self.wall_s,
                "throughput_img_s": self.throughput, "unstable": self.unstable, "total_ms": as_dict(self.total),
                "phases_ms": {k: as_dict(v) for k, v in self.phases.items()}}


def run_benchmark(step: Callable[[], dict[str, float]], batch: int, warmup: int = 5, iterations: int = 20,
                  duration: float = 0.0, clock: Callable[[], float] = time.perf_counter) -> BenchResult:
    """`step()` runs one batch and returns its phase times in ms; warm-up runs are not counted."""
    for _ in range(warmup):
        step()
    totals: list[float] = []
    phases: dict[str, list[float]] = {}
    start = clock()
    while len(totals) < iterations or clock() - start < duration:
        t0 = clock()
        for name, ms in step().items():
            phases.setdefault(name, []).append(ms)
        totals.append((clock() - t0) * 1000.0)
    wall = clock() - start
    return BenchResult(batch, len(totals), wall, latency_stats(totals),
                       {k: latency_stats(v) for k, v in phases.items()})


def format_result(name: str, r: BenchResult) -> list[str]:
    """trtexec-like summary lines."""
    t = r.total
    lines = [f"=== {name}: batch {r.batch}, {r.iterations} iterations in {r.wall_s:.2f} s",
             f"Throughput: {r.throughput:.2f} img/s",
             f"Latency: min = {t.min:.3f} ms, max = {t.max:.3f} ms, mean = {t.mean:.3f} ms, median = {t.median:.3f} ms, "
             f"percentile(90%) = {t.p90:.3f} ms, percentile(95%) = {t.p95:.3f} ms, percentile(99%) = {t.p99:.3f} ms"]
    for phase, s in r.phases.items():
        lines.append(f"  {phase:12s} mean = {s.mean:.3f} ms, median = {s.median:.3f} ms, p99 = {s.p99:.3f} ms")
    if r.unstable:
        lines.append(f"[W] timings are unstable: coefficient of variation {100 * t.cv:.1f}% > {100 * UNSTABLE_CV:.0f}% "
                     "(other load on the machine, thermal or clock changes?)")
    return lines
