"""Shared timing helpers for the benchmark scripts: median wall time of one call after warm-up (median_ms), and
of several calls timed against each other (interleaved_ms)."""
from __future__ import annotations

import statistics
import time
from typing import Callable


def median_ms(fn: Callable[[], object], iterations: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iterations):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def interleaved_ms(calls: dict[str, Callable[[], object]], rounds: int, warmup: int = 2) -> dict[str, float]:
    """{name: median ms} of `calls`, measured in `rounds` interleaved rounds after `warmup` untimed ones.

    Timing several calls against each other on a shared, noisy machine: rounds run every call once, in turn,
    so a burst of outside load hits all of them alike; the order rotates every round (the call after a
    different one runs measurably slower or faster: caches, clocks, and ONNX Runtime's thread pool, which keeps
    spinning after a run and competes with the next session on a 2-core machine), and each timed call follows
    one untimed call of the same function, which absorbs that switch; the result is each call's median."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    names = list(calls)
    for r in range(warmup + rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            calls[name]()
            t = time.perf_counter()
            calls[name]()
            if r >= warmup:
                times[name].append(time.perf_counter() - t)
    return {name: 1000 * statistics.median(ts) for name, ts in times.items()}
