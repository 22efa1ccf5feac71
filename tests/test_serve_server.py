"""Serving against a real tritonserver on loopback (the integration tier): shapes_d0 (--nms onnx, batch 1..8, at
128 px to keep load tests short) served by our python-backend model. Served detections equal the in-process
Detector's exactly over HTTP and gRPC (and through the ensemble, its native step stood in by a python model running
the same file); concurrent load is batched, every request answered exactly once; bad requests get errors while
the server keeps serving; a killed server gives clients one clear error within seconds and serves again after a
restart; `serve` drains on SIGTERM/SIGINT and exits 0. Every test stops every process it started."""
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from effdet.synthetic import write_dataset
from export.onnx_export import export_onnx
from export.settings import ExportSettings
from export.triton_served import ServeSettings, served_repository
from runtime.detector import Detector
from runtime.errors import DeployError
from runtime.image_io import read_image
from runtime.remote import RemoteDetector
from serve_helpers import gone, huge_png, processes_mentioning, require_server, running_server

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, pytest.mark.integration]
MAX_BYTES = 4 * 2**20
STAND_IN = Path(__file__).with_name("serve_native_stand_in.py")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(onnx file, repository, images): the file, its repository (native step stood in), 10 scene files."""
    require_server()
    tmp = tmp_path_factory.mktemp("serve")
    onnx = export_onnx(ExportSettings(model="shapes_d0", output=tmp / "shapes.onnx", nms="onnx", image_size=(128, 128),
                                      dynamic_batch=(1, 4, 8)))
    repo = served_repository(ServeSettings(model=onnx, output=tmp / "repo", name="shapes", max_bytes=MAX_BYTES))
    native = repo.root / "shapes_native"          # this server has no onnxruntime backend: a python stand-in
    (native / "config.pbtxt").write_text((native / "config.pbtxt").read_text()
                                         .replace('platform: "onnxruntime_onnx"', 'backend: "python"'))
    (native / "1" / "model.py").write_text(STAND_IN.read_text())
    write_dataset(tmp / "scenes", 8, seed=31, progress=False)
    images = sorted((tmp / "scenes" / "images").glob("*.png"))
    for i, size in enumerate([(300, 120), (77, 203)]):         # odd, non-square sizes: letterbox both ways
        Image.open(images[i]).resize(size).save(tmp / f"odd{i}.png")
        images.append(tmp / f"odd{i}.png")
    return onnx, repo, images


@pytest.fixture(scope="module")
def server(served):
    _, repo, _ = served
    with running_server(repo.root, ["shapes", "shapes_native", "shapes_pre", "shapes_post", "shapes_ensemble"]) as s:
        yield s


def same(a, b) -> bool:
    return (np.array_equal(a.boxes, b.boxes) and np.array_equal(a.scores, b.scores)
            and np.array_equal(a.classes, b.classes))


@pytest.fixture(scope="module")
def expected(served):
    onnx, _, images = served
    with Detector(onnx) as det:
        return {p: det.detect(read_image(p)) for p in images}


def test_served_equals_detector_http_grpc_and_ensemble(server, served, expected):
    _, _, images = served
    assert sum(len(d) for d in expected.values()) >= 20                       # real detections to compare
    for url, name in ((server.urls()["http"], None), ("grpc://" + server.urls()["grpc"], None),
                      (server.urls()["http"], "shapes_ensemble")):
        with RemoteDetector(url, name) as remote:
            assert remote.model_name == (name or "shapes") and remote.info.class_names[0] == "circle"
            for p in images:
                assert same(remote.detect(p), expected[p]), (url, name, p.name)
            array = read_image(images[0])                                    # an array goes out as lossless PNG
            assert same(remote.detect([array])[0], expected[images[0]])


def cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "effdet_deploy", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def test_infer_server_writes_what_local_infer_writes(server, served, tmp_path):
    onnx, _, images = served
    folder = images[0].parent
    local = cli("infer", "--model", onnx, "--input", folder, "--output", tmp_path / "local")
    remote = cli("infer", "--server", server.urls()["http"], "--model-name", "shapes", "--input", folder,
                 "--output", tmp_path / "remote")
    assert local.returncode == 0 and remote.returncode == 0, local.stderr + remote.stderr
    assert json.loads((tmp_path / "local" / "detections.json").read_text()) == \
        json.loads((tmp_path / "remote" / "detections.json").read_text())
    pictures = sorted(p.relative_to(tmp_path / "local") for p in (tmp_path / "local").rglob("*.png"))
    assert len(pictures) == 8
    for p in pictures:
        assert (tmp_path / "local" / p).read_bytes() == (tmp_path / "remote" / p).read_bytes()


def load(url: str, payloads: list[bytes], clients: int, each: int) -> tuple[dict[str, object], list[str]]:
    """`clients` threads x `each` requests with ids c<k>-<i>; {answered id: detections}, [failures]."""
    remote = RemoteDetector(url)
    answers: dict[str, object] = {}
    ids: list[str] = []
    failures: list[str] = []
    lock = threading.Lock()

    def client(k: int) -> None:
        for i in range(each):
            try:
                got, found = remote.request(payloads[(k + i) % len(payloads)], f"c{k}-{i}")
            except DeployError as e:
                failures.append(str(e))
                continue
            with lock:
                ids.append(got)
                answers[got] = found
    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    remote.close()
    assert sorted(ids) == sorted(f"c{k}-{i}" for k in range(clients) for i in range(each)), "lost or duplicated"
    return answers, failures


def test_eight_clients_250_requests_each_exactly_once_batched(server, served, expected):
    _, _, images = served
    payloads = [p.read_bytes() for p in images]
    before = batch_counts(server)
    half = load(server.urls()["http"], payloads, 4, 250)
    other = load("grpc://" + server.urls()["grpc"], payloads, 4, 250)
    for answers, failures in (half, other):
        assert failures == []
        for rid, found in answers.items():                # batched answers equal the one-by-one Detector's
            k, i = (int(v) for v in rid[1:].split("-"))
            assert same(found, expected[images[(k + i) % len(images)]]), rid
    after = batch_counts(server)
    batched = {size: after.get(size, 0) - before.get(size, 0) for size in after}
    assert sum(size * n for size, n in batched.items()) == 2000
    assert sum(n for size, n in batched.items() if size > 1) > 0, batched


def batch_counts(server) -> dict[int, int]:
    """Triton's statistics for the detector: executions per batch size."""
    import tritonclient.http as http

    client = http.InferenceServerClient(server.urls()["http"])
    stats = client.get_inference_statistics("shapes")["model_stats"][0]
    client.close()
    return {int(b["batch_size"]): int(b["compute_infer"]["count"]) for b in stats.get("batch_stats", [])}


def raw_infer(url: str, array: np.ndarray, dtype: str) -> str:
    """One request with any tensor as IMAGE; '' on success, else the server's error."""
    import tritonclient.http as http

    client = http.InferenceServerClient(url)
    tensor = http.InferInput("IMAGE", list(array.shape), dtype)
    tensor.set_data_from_numpy(array)
    try:
        client.infer("shapes", [tensor])
        return ""
    except Exception as e:                                       # InferenceServerException
        return str(e)
    finally:
        client.close()


def test_bad_requests_get_errors_and_the_server_keeps_serving(server, served, expected):
    _, _, images = served
    url = server.urls()["http"]
    good = images[0].read_bytes()
    bad = {"not a readable image": np.frombuffer(good[:40] + b"\0garbage" * 50, np.uint8)[None],
           "empty payload": np.zeros((1, 0), np.uint8),
           "not a readable image ": np.frombuffer(b"a text file\nwith lines\n" * 10, np.uint8)[None],
           "exceeds the limit of 50 MP": np.frombuffer(huge_png(), np.uint8)[None],
           f"exceeds the limit of {MAX_BYTES} bytes": np.ones((1, MAX_BYTES + 1), np.uint8)}
    stop, answered = threading.Event(), []

    def traffic() -> None:                                        # good requests batched with the bad ones
        with RemoteDetector(url) as remote:
            while not stop.is_set():
                answered.append(same(remote.detect(good), expected[images[0]]))
    thread = threading.Thread(target=traffic)
    thread.start()
    try:
        for message, array in bad.items():
            assert message.strip() in raw_infer(url, array, "UINT8")
            with RemoteDetector(url) as remote:                   # the next request succeeds
                assert same(remote.detect(good), expected[images[0]])
        assert "data-type is 'FP32', but model 'shapes' expects 'UINT8'" in \
            raw_infer(url, np.zeros((1, 16), np.float32), "FP32")
        assert "unexpected shape for input 'IMAGE'" in raw_infer(url, np.zeros((1, 2, 3), np.uint8), "UINT8")
        with RemoteDetector(url) as remote:
            assert same(remote.detect(good), expected[images[0]])
    finally:
        stop.set()
        thread.join(60)
    assert answered and all(answered)
    with RemoteDetector(url) as remote:
        assert same(remote.detect(good), expected[images[0]])


def test_killed_mid_load_one_clear_error_then_restart_serves(served, expected):
    from effdet_deploy.triton_server import Ports

    _, repo, images = served
    ports = Ports.pick()
    errors: list[tuple[float, str]] = []
    with running_server(repo.root, ["shapes"], ports) as server:
        remote = RemoteDetector(server.urls()["http"], timeout_s=30)

        def client(k: int) -> None:
            while True:
                try:
                    remote.detect(images[k % len(images)])
                except DeployError as e:
                    errors.append((time.monotonic(), str(e)))
                    return
        threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(4)]
        for t in threads:
            t.start()
        time.sleep(2)
        killed = time.monotonic()
        server.kill()
        for t in threads:
            t.join(15)
        assert not any(t.is_alive() for t in threads), "a client hung after the server died"
    assert len(errors) == 4
    for at, message in errors:
        assert at - killed < 5 and "\n" not in message and f"127.0.0.1:{ports.http}" in message, message
    with running_server(repo.root, ["shapes"], ports) as server:                # the same ports, again
        with RemoteDetector(server.urls()["http"]) as fresh:
            assert same(fresh.detect(images[1]), expected[images[1]])


def serve_cli(onnx: Path, *flags) -> tuple[subprocess.Popen, str, str, float]:
    """`effdet-deploy serve` started; returns (process, HTTP address, its repository, seconds to the URL lines)."""
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "effdet_deploy", "serve", str(onnx), *map(str, flags)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.strip().startswith("HTTP"):
            repo = next(ln for ln in lines if ln.startswith("serving ")).split(" from ")[1].split(" (ready")[0]
            return proc, line.split()[1].removeprefix("http://"), repo, time.monotonic() - start
    proc.wait(30)
    raise AssertionError("serve never printed its URLs: " + "".join(lines) + proc.stderr.read())


@pytest.mark.parametrize("sig, instances", [("SIGTERM", 1), ("SIGINT", 2)])
def test_serve_cli_drains_stops_and_exits_0(served, expected, sig, instances):
    import signal

    onnx, _, images = served
    proc, http, repo, ready_s = serve_cli(onnx, "--max-queue-delay-us", 400_000, "--exit-timeout", 5,
                                          "--instances", instances)
    try:
        assert ready_s < 30
        results: list[bool] = []
        with RemoteDetector(http) as remote:
            threads = [threading.Thread(target=lambda p=p: results.append(same(remote.detect(p), expected[p])))
                       for p in images[:3]]
            for t in threads:
                t.start()
            time.sleep(0.15)                                      # in the batcher's 0.4 s queue now
            proc.send_signal(getattr(signal, sig))
            for t in threads:
                t.join(30)
        assert results == [True, True, True]                      # in-flight requests finished
        assert proc.wait(30) == 0
        assert "server stopped" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert gone(repo), f"serve left a process behind: {processes_mentioning(repo)}"
    assert not Path(repo).exists()                                # its temporary repository is gone too
