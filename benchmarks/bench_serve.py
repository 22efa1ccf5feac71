"""Serving vs in-process, measured in one run on the same cores: shapes_d0 (--nms onnx, batch 1..8, at its 256 px)
behind a real tritonserver (the nvidia-pytriton wheel's 2.51, python backend, dynamic batching on, one instance)
against one Detector over the same file shared by the same number of threads. Both sides start from the encoded
PNG bytes (the server decodes them, so the in-process threads decode too). Prints throughput and p50/p95/p99
latency at concurrency 1/2/4/8, the goals of issue 23 (throughput at 8 >= 0.9x in-process; 2,000 requests under
load with bad ones mixed in: 0 lost, duplicated or failed, every bad one an error; `serve shapes_d0` ready
<= 15 s), and the versions. Writes the latency plot.

    .venv/bin/python benchmarks/bench_serve.py [--requests 64] [--rounds 3] [--load 2000] [--protocol grpc]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # the repo root: runs from a bare checkout too
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from bench_serve_runs import ready_seconds, run_load, served_stats  # noqa: E402

from effdet.synthetic import write_dataset  # noqa: E402
from export.onnx_export import export_onnx  # noqa: E402
from export.settings import ExportSettings  # noqa: E402
from export.triton_served import ServeSettings, served_repository  # noqa: E402
from runtime.detector import Detector  # noqa: E402
from runtime.remote import RemoteDetector  # noqa: E402
from runtime.served import decode_image  # noqa: E402
from serve_helpers import running_server  # noqa: E402

LEVELS = (1, 2, 4, 8)


def timed(call, payloads: list[bytes], threads: int, total: int) -> tuple[float, list[float]]:
    """`threads` threads share `total` calls call(payload); (throughput in img/s, latencies in s)."""
    latencies: list[float] = []
    counter = iter(range(total))
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            t0 = time.perf_counter()
            call(payloads[i % len(payloads)])
            latencies.append(time.perf_counter() - t0)
    pool = [threading.Thread(target=worker) for _ in range(threads)]
    start = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return total / (time.perf_counter() - start), latencies


def summary(runs: list[tuple[float, list[float]]]) -> dict[str, float]:
    """Rounds of (throughput, latencies) -> median throughput, percentiles of all latencies (ms)."""
    ms = np.concatenate([np.asarray(lat) for _, lat in runs]) * 1000
    return {"throughput": float(np.median([t for t, _ in runs])), "p50": float(np.percentile(ms, 50)),
            "p95": float(np.percentile(ms, 95)), "p99": float(np.percentile(ms, 99))}


def measure(onnx: Path, repo: Path, payloads: list[bytes], args: argparse.Namespace) -> dict[str, dict[int, dict]]:
    """Each concurrency level in rounds that alternate in-process and served runs, both loaded side by side, so
    both see the same machine (other work on shared cores shifts both alike)."""
    results: dict[str, dict[int, dict]] = {"in-process": {}, "served": {}}
    with Detector(onnx) as det, running_server(repo, ["shapes"]) as server:
        url = server.urls()[args.protocol] if args.protocol == "http" else "grpc://" + server.urls()["grpc"]
        remote = RemoteDetector(url)
        local = lambda b: det.detect(decode_image(b))   # noqa: E731
        local(payloads[0]), remote.request(payloads[0])
        for n in LEVELS:
            runs: dict[str, list] = {"in-process": [], "served": []}
            for _ in range(args.rounds):
                runs["in-process"].append(timed(local, payloads, n, args.requests))
                runs["served"].append(timed(remote.request, payloads, n, args.requests))
            for mode in runs:
                results[mode][n] = summary(runs[mode])
                print(f"  {mode:<10}  concurrency {n}: {fmt(results[mode][n])}", flush=True)
        results["load"] = run_load(remote, payloads, 8, args.load // 8)
        results["server"] = served_stats(server)
        remote.close()
    return results


def fmt(r: dict[str, float]) -> str:
    return f"{r['throughput']:.1f} img/s, p50 {r['p50']:.0f} ms, p95 {r['p95']:.0f} ms, p99 {r['p99']:.0f} ms"


def versions(onnx: Path, server: dict) -> str:
    import onnxruntime

    from effdet_deploy import __version__

    info = Detector(onnx).info
    return (f"Triton {server['version']} (python backend, nvidia-pytriton wheel), ONNX Runtime {onnxruntime.__version__}"
            f" CPU, model {info.model} {info.precision} {info.image_size[0]}x{info.image_size[1]} --nms {info.nms} "
            f"batch {info.batch[0]}..{info.batch[1]}, efficientdet-deploy {__version__}, numpy {np.__version__}")


def table(results: dict) -> str:
    rows = ["| concurrency | in-process img/s | served img/s | ratio | in-process p50 / p95 / p99 ms | "
            "served p50 / p95 / p99 ms |", "|---|---|---|---|---|---|"]
    for n in LEVELS:
        a, b = results["in-process"][n], results["served"][n]
        rows.append(f"| {n} | {a['throughput']:.1f} | {b['throughput']:.1f} | {b['throughput'] / a['throughput']:.2f} | "
                    f"{a['p50']:.0f} / {a['p95']:.0f} / {a['p99']:.0f} | {b['p50']:.0f} / {b['p95']:.0f} / "
                    f"{b['p99']:.0f} |")
    return "\n".join(rows)


def plot(results: dict, target: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4))
    for mode, style in (("in-process", "--"), ("served", "-")):
        for q, color in (("p50", "C0"), ("p95", "C1"), ("p99", "C3")):
            ax.plot(LEVELS, [results[mode][n][q] for n in LEVELS], style, color=color, marker="o", label=f"{mode} {q}")
    ax.set(xlabel="concurrent clients", ylabel="latency (ms)", xticks=LEVELS,
           title=f"shapes_d0 256 px, {os.cpu_count()} CPU cores: served (Triton, python backend) vs in-process")
    ax.title.set_fontsize(9)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, dpi=100)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=64, help="requests per round, concurrency level and mode")
    p.add_argument("--rounds", type=int, default=3, help="alternating in-process / served rounds per level")
    p.add_argument("--load", type=int, default=2000, help="requests in the load goal (8 clients)")
    p.add_argument("--protocol", choices=("grpc", "http"), default="grpc")
    p.add_argument("--plot", type=Path,
                   default=Path(__file__).resolve().parents[1] / "docs" / "assets" / "serve_latency.png")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        work = Path(tmp)
        onnx = export_onnx(ExportSettings(model="shapes_d0", output=work / "shapes.onnx", nms="onnx",
                                          dynamic_batch=(1, 4, 8)))
        repo = served_repository(ServeSettings(model=onnx, output=work / "repo", name="shapes")).root
        write_dataset(work / "scenes", 16, seed=41, progress=False)
        payloads = [f.read_bytes() for f in sorted((work / "scenes" / "images").glob("*.png"))]
        results = measure(onnx, repo, payloads, args)
        ready = ready_seconds("shapes_d0")
        print(f"\n{versions(onnx, results['server'])}\nprotocol {args.protocol}, {args.rounds} x {args.requests} requests per cell (median throughput of the rounds)\n")
        print(table(results))
        ratio = results["served"][8]["throughput"] / results["in-process"][8]["throughput"]
        load = results["load"]
        print(f"\ngoal: served throughput at 8 >= 0.9x in-process: {ratio:.2f}x -> {'MET' if ratio >= 0.9 else 'MISSED'}")
        print(f"goal: {load['sent']} requests under load (+{load['bad_sent']} bad ones mixed in): {load['lost']} lost, "
              f"{load['duplicated']} duplicated, {load['failed']} failed, {load['bad_errors']}/{load['bad_sent']} bad "
              f"answered with an error, alive after: {load['alive']} -> "
              f"{'MET' if load['ok'] else 'MISSED'}")
        print(f"goal: serve shapes_d0 ready in {ready:.1f} s (<= 15 s) -> {'MET' if ready <= 15 else 'MISSED'}")
        print(f"batched executions under load: {results['server']['batches']}")
        plot(results, args.plot)
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
