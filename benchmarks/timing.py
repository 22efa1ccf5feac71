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


def interleaved_ms(calls: dict[str, Callable[[], object]], rounds: int, warmup: int = 2,
                   block: int = 1) -> dict[str, float]:
    """{name: median ms} of `calls`, measured in `rounds` interleaved rounds after `warmup` untimed ones.

    Timing several calls against each other on a shared, noisy machine: rounds run every call in turn, so a
    burst of outside load hits all of them alike; the order rotates every round (the call after a different one
    runs measurably slower or faster: caches, clocks, and ONNX Runtime's thread pool, which keeps spinning after
    a run and competes with the next session), and each turn starts with untimed calls of the same function,
    which absorb that switch: one before a single timed call (block 1), three before `block` timed calls. With
    16 threads on the 16-core device one untimed call was not enough (five D0 sessions measured 22-51 ms
    interleaved one by one, 22-27 ms in blocks of 7 and 22-30 ms each alone), so use blocks there. The result
    is each call's median over all timed calls."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    names = list(calls)
    settle = 1 if block == 1 else 3
    for r in range(warmup + rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            for _ in range(settle):
                calls[name]()
            for _ in range(block):
                t = time.perf_counter()
                calls[name]()
                if r >= warmup:
                    times[name].append(time.perf_counter() - t)
    return {name: 1000 * statistics.median(ts) for name, ts in times.items()}
