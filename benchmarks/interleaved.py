"""Timing several calls against each other on a shared, noisy machine: rounds run every call once, in turn,
so a burst of outside load hits all of them alike; the result is each call's median over the rounds."""
from __future__ import annotations

import statistics
import time
from typing import Callable


def interleaved_ms(calls: dict[str, Callable[[], object]], rounds: int, warmup: int = 2) -> dict[str, float]:
    """{name: median ms} of `calls`, measured in `rounds` interleaved rounds after `warmup` untimed ones."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    for r in range(warmup + rounds):
        for name, fn in calls.items():
            t = time.perf_counter()
            fn()
            if r >= warmup:
                times[name].append(time.perf_counter() - t)
    return {name: 1000 * statistics.median(ts) for name, ts in times.items()}
