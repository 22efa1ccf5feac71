"""The fast tier of serving: the repository a stock Triton loads (every config through Triton's schema, the ensemble's
steps wired tensor by tensor), serve --dry-run, the request limits, one-line errors, and one smoke run of the real
server (start, one request equal to the in-process Detector, stop, nothing left)."""
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from export.triton import validate_config
from export.triton_served import ServeSettings, served_repository
from runtime.errors import DeployError
from runtime.served import decode_image
from serve_helpers import huge_png, png_bytes, require_server, running_server, tiny_detector_onnx

ROOT = Path(__file__).resolve().parents[1]


def cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "effdet_deploy", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_detector_onnx(tmp_path_factory.mktemp("tiny") / "tiny.onnx")


def configs(root: Path) -> dict:
    return {p.parent.name: validate_config(p.read_text(), str(p)) for p in root.glob("*/config.pbtxt")}


def test_repository_and_ensemble_wiring(tiny, tmp_path):
    repo = served_repository(ServeSettings(model=tiny, output=tmp_path / "repo", max_queue_delay_us=500))
    assert (repo.detector, repo.native, repo.ensemble) == ("tiny", "tiny_native", "tiny_ensemble")
    found = configs(repo.root)
    assert set(found) == {"tiny", "tiny_native", "tiny_pre", "tiny_post", "tiny_ensemble"}
    det = found["tiny"]
    assert det.backend == "python" and det.max_batch_size == 4 and det.input[0].allow_ragged_batch
    assert det.dynamic_batching.max_queue_delay_microseconds == 500
    assert [o.name for o in det.output] == ["num_detections", "detection_boxes", "detection_scores",
                                            "detection_classes"]
    assert (repo.root / "tiny" / "labels.txt").read_text().split() == ["bright", "dark"]
    assert found["tiny_native"].platform == "onnxruntime_onnx"
    ensemble = found["tiny_ensemble"]
    produced = {i.name: (i.data_type, list(i.dims)) for i in ensemble.input}
    for step in ensemble.ensemble_scheduling.step:          # each step reads only tensors produced before it
        model = found[step.model_name]
        inputs = {i.name: (i.data_type, list(i.dims)) for i in model.input}
        outputs = {o.name: (o.data_type, list(o.dims)) for o in model.output}
        assert set(step.input_map) == set(inputs), step.model_name
        for key, tensor in step.input_map.items():
            assert produced[tensor][0] == inputs[key][0], (step.model_name, key)
        assert set(step.output_map) <= set(outputs)
        produced.update({tensor: outputs[key] for key, tensor in step.output_map.items()})
    assert {o.name for o in ensemble.output} <= set(produced)


def test_engine_repository_carries_its_sidecar(tiny, tmp_path):
    import onnx

    from runtime.engine_sidecar import check_unchanged, read_sidecar, write_sidecar

    engine = tmp_path / "tiny.engine"                  # an engine is described by its sidecar (not run here)
    engine.write_bytes(b"\0" * 64)
    write_sidecar(engine, {"tensorrt_version": "10.5.0", "onnx_metadata": {p.key: p.value for p in
                                                                           onnx.load(str(tiny)).metadata_props}})
    repo = served_repository(ServeSettings(model=engine, output=tmp_path / "repo"))
    found = configs(repo.root)
    assert found["tiny"].instance_group[0].kind == 1 and found["tiny_native"].platform == "tensorrt_plan"   # KIND_GPU
    plan = repo.root / "tiny" / "1" / "model.plan"
    check_unchanged(plan, read_sidecar(plan), digest=True)             # the copy is the engine its sidecar names
    out = cli("serve", engine, "--dry-run", "--repository", tmp_path / "dry")
    assert out.returncode == 0 and "'tensorrt-cu12==10.5.0'" in out.stdout, out.stdout + out.stderr


def test_plugin_file_gets_no_native_model(tmp_path, tiny):
    import onnx

    model = onnx.load(str(tiny))
    model.graph.node[0].op_type = "EfficientNMS_TRT"     # as a default (--nms efficient) export: no ORT backend for it
    onnx.save(model, str(tmp_path / "plugin.onnx"))
    repo = served_repository(ServeSettings(model=tmp_path / "plugin.onnx", output=tmp_path / "repo"))
    assert repo.native is None and repo.ensemble is None and "EfficientNMS_TRT" in repo.note
    assert set(configs(repo.root)) == {"plugin"}


def test_request_limits():
    with pytest.raises(DeployError, match="empty payload"):
        decode_image(b"")
    with pytest.raises(DeployError, match="not a readable image"):
        decode_image(b"just some text\n")
    with pytest.raises(DeployError, match=r"exceeds the limit of 50 MP \(Image size \(200000000 pixels\)"):
        decode_image(huge_png())
    with pytest.raises(DeployError, match="10000x6000 = 60 MP exceeds the limit of 50 MP"):
        decode_image(huge_png(10000, 6000))
    with pytest.raises(DeployError, match="exceeds the limit of 100 bytes"):
        decode_image(b"\0" * 101, max_bytes=100)
    image = np.random.default_rng(0).integers(0, 255, (5, 7, 3), np.uint8)
    assert np.array_equal(decode_image(png_bytes(image)), image)


def test_client_and_served_model_import_neither_torch_nor_onnx():
    code = ("import sys; from runtime import RemoteDetector; import runtime.served_model, runtime.detector; "
            "print(sorted(m for m in ('torch', 'onnx', 'effdet') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr


def test_dry_run_and_errors(tiny, tmp_path):
    out = cli("serve", tiny, "--dry-run", "--repository", tmp_path / "repo")
    assert out.returncode == 0, out.stderr
    assert "tiny/config.pbtxt" in out.stdout and "tiny_ensemble/config.pbtxt" in out.stdout
    assert "docker run --gpus=all" in out.stdout and "tritonserver --model-repository=/models" in out.stdout
    assert "KIND_GPU" in (tmp_path / "repo" / "tiny" / "config.pbtxt").read_text()   # the docker line is for GPUs
    for args, message in ((("serve", tmp_path / "missing.onnx"), "file not found"),
                          (("serve", tiny, "--max-batch-size", 16, "--dry-run", "--repository", tmp_path / "r2"),
                           "--max-batch-size 16 does not fit"),
                          (("infer", "--server", "127.0.0.1:1", "--input", tmp_path), "no Triton server answers"),
                          (("infer", "--input", tmp_path), "give --model (run here) or --server")):
        if args[0] == "infer":
            (tmp_path / "a.png").write_bytes(png_bytes(np.zeros((8, 8, 3), np.uint8)))
        failed = cli(*args)
        assert failed.returncode == 2 and message in failed.stderr, failed.stderr
        assert len(failed.stderr.strip().splitlines()) == 1, failed.stderr


def test_smoke_start_one_request_stop(tiny, tmp_path):
    """The real server: ready, one request answered as the in-process Detector answers, stopped, nothing left."""
    require_server()
    from runtime.detector import Detector
    from runtime.remote import RemoteDetector

    start = time.monotonic()
    repo = served_repository(ServeSettings(model=tiny, output=tmp_path / "repo"))
    image = np.full((30, 50, 3), 200, np.uint8)
    with running_server(repo.root, [repo.detector]) as server:
        with RemoteDetector(server.urls()["http"]) as remote:
            served = remote.detect(image)
    took = time.monotonic() - start
    with Detector(tiny) as det:
        local = det.detect(image)
    assert len(local) == 1 and np.array_equal(served.boxes, local.boxes) and np.array_equal(served.scores, local.scores)
    assert served.boxes[0].tolist() == pytest.approx([4 * 50 / 64, 8 * 50 / 64, 32 * 50 / 64, 30], abs=1e-4)
    assert took < 20, f"start + one request + stop took {took:.1f} s"
