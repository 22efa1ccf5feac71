"""bench_model: one Detector, a fixed batch of the built-in images, run_benchmark over detect()."""
from __future__ import annotations

from typing import Any

from effdet_deploy.tool_images import tool_images
from runtime.benchmark import BenchResult, run_benchmark
from runtime.detector import Detector


def bench_model(path: str, batch: int = 1, warmup: int = 5, iterations: int = 20, duration: float = 0.0,
                backend: str | None = None, device: str | None = None, options: dict[str, Any] | None = None,
                use_cuda_graph: bool = False) -> tuple[BenchResult, str]:
    options = dict(options or {})
    if use_cuda_graph:
        options["use_cuda_graph"] = True
    _, images = tool_images(None, max(batch, 1) + 1)
    batch_images = images[1:batch + 1]
    with Detector(path, backend=backend, device=device, **options) as det:
        def step() -> dict[str, float]:
            det.detect(batch_images)
            phases = {k: v * 1000.0 for k, v in det.timings.items()}
            phases.update({f"gpu_{k}": v for k, v in getattr(det.backend, "last_gpu_ms", {}).items()})
            return phases

        return run_benchmark(step, batch, warmup, iterations, duration), det.backend.describe()
