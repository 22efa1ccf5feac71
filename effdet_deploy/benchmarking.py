"""bench_model: one Detector, a fixed batch of the built-in images, run_benchmark over detect()."""
from __future__ import annotations

from typing import Any

from effdet_deploy.tool_images import tool_images
from runtime.benchmark import BenchResult, run_benchmark
from runtime.detector import Detector, backend_for
from runtime.errors import DeployError


def check_bench_settings(path: str, batch: int, warmup: int, iterations: int, duration: float,
                         backend: str | None, use_cuda_graph: bool) -> None:
    """One clear line for settings that cannot be measured, before any model is loaded."""
    if batch < 1 or iterations < 1 or warmup < 0 or duration < 0:
        raise DeployError(f"--batch and --iterations must be >= 1, --warmup and --duration >= 0 (got batch {batch}, "
                          f"iterations {iterations}, warmup {warmup}, duration {duration})")
    if use_cuda_graph and (backend or backend_for(path)) != "tensorrt":
        raise DeployError(f"{path}: --use-cuda-graph needs a TensorRT engine (.engine/.plan); this runs on "
                          f"{backend or backend_for(path)}")


def batch_note(batch: int, file_batch: tuple[int, int]) -> str:
    """What was really run for `batch` images on a file accepting (min, max) per call; '' when as asked."""
    lo, hi = file_batch
    if batch > hi:
        calls = -(-batch // hi)
        return f"batch {batch} run as {calls} calls of up to {hi} (the file's max batch is {hi})"
    if batch < lo:
        return f"batch {batch} padded to {lo} per call (the file's min batch is {lo}); throughput counts {batch}"
    return ""


def bench_model(path: str, batch: int = 1, warmup: int = 5, iterations: int = 20, duration: float = 0.0,
                backend: str | None = None, device: str | None = None, options: dict[str, Any] | None = None,
                use_cuda_graph: bool = False) -> tuple[BenchResult, str]:
    """(statistics, description of the backend and, where it differs from the request, the batch run)."""
    check_bench_settings(path, batch, warmup, iterations, duration, backend, use_cuda_graph)
    options = dict(options or {})
    if use_cuda_graph:
        options["use_cuda_graph"] = True
    _, images = tool_images(None, batch + 1)
    batch_images = images[1:batch + 1]
    with Detector(path, backend=backend, device=device, **options) as det:
        def step() -> dict[str, float]:
            det.detect(batch_images)
            phases = {k: v * 1000.0 for k, v in det.timings.items()}
            phases.update({f"gpu_{k}": v for k, v in getattr(det.backend, "last_gpu_ms", {}).items()})
            return phases

        note = batch_note(batch, det.backend.batch_limits())
        description = det.backend.describe() + (f"; {note}" if note else "")
        return run_benchmark(step, batch, warmup, iterations, duration), description
