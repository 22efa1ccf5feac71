"""bench_serve.py's goal runs: 2,000 requests from 8 clients with bad requests mixed in (ids counted: lost,
duplicated, failed), Triton's own statistics, and the time `effdet-deploy serve shapes_d0` takes to print its URLs."""
from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np

from runtime.errors import DeployError

ROOT = Path(__file__).resolve().parents[1]
BAD = [b"", b"a text file, not an image\n" * 8, b"\x89PNG\r\n\x1a\n" + b"\0corrupt" * 64]


def run_load(remote, payloads: list[bytes], clients: int, each: int) -> dict:
    """clients x each good requests (ids c<k>-<i>) while one more client sends bad ones in between."""
    ids: list[str] = []
    failed: list[str] = []
    bad = {"sent": 0, "errors": 0}
    done = threading.Event()

    def good(k: int) -> None:
        for i in range(each):
            try:
                ids.append(remote.request(payloads[(k + i) % len(payloads)], f"c{k}-{i}")[0])
            except DeployError as e:
                failed.append(str(e))

    def spoiler() -> None:
        while not done.is_set():
            bad["sent"] += 1
            try:
                remote.request(BAD[bad["sent"] % len(BAD)])
            except DeployError:
                bad["errors"] += 1
            time.sleep(0.05)
    threads = [threading.Thread(target=good, args=(k,)) for k in range(clients)]
    side = threading.Thread(target=spoiler)
    side.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    side.join()
    expected = {f"c{k}-{i}" for k in range(clients) for i in range(each)}
    counts = Counter(ids)
    alive = len(remote.request(payloads[0])[1]) >= 0
    result = {"sent": len(expected), "lost": len(expected - set(counts)), "failed": len(failed),
              "duplicated": sum(n - 1 for n in counts.values() if n > 1), "bad_sent": bad["sent"],
              "bad_errors": bad["errors"], "alive": alive}
    result["ok"] = (result["lost"] == result["duplicated"] == result["failed"] == 0 and alive
                    and bad["errors"] == bad["sent"] and set(counts) <= expected)
    return result


def served_stats(server) -> dict:
    """The server's version and the detector's executions per batch size."""
    import tritonclient.http as http

    client = http.InferenceServerClient(server.urls()["http"])
    stats = client.get_inference_statistics("shapes")["model_stats"][0]
    version = client.get_server_metadata()["version"]
    client.close()
    batches = {int(b["batch_size"]): int(b["compute_infer"]["count"]) for b in stats.get("batch_stats", [])}
    return {"version": version, "batches": dict(sorted(batches.items())),
            "inferences": int(stats["inference_count"]), "executions": int(stats["execution_count"])}


def ready_seconds(model: str) -> float:
    """Seconds from starting `effdet-deploy serve MODEL` to its URL lines (a first run exports and caches the model
    file; that run is not the one timed)."""
    best = []
    for _ in range(2):
        start = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "effdet_deploy", "serve", model], cwd=ROOT, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            for line in proc.stdout:
                if line.strip().startswith("HTTP"):
                    best.append(time.monotonic() - start)
                    break
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
    return float(np.asarray(best)[-1]) if best else float("inf")
