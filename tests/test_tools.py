"""The user-facing tools on the shipped shapes_d0: compare (PASS/FAIL, exit codes, JSON), bench
(statistics on a fake clock, a real short run), eval (CLI), triton (configs checked with Triton's own
schema), infer (pictures + JSON) and the pipeline end to end."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from effdet.synthetic import write_dataset
from export.onnx_export import export_onnx
from export.settings import ExportSettings
from export.triton import TritonSettings, triton_repository, validate_config
from optional_deps import require_modelopt
from quantize_helpers import shapes_files
from runtime.benchmark import latency_stats, run_benchmark
from runtime.engine_sidecar import write_sidecar
from runtime.errors import DeployError

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def cli(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "effdet_deploy", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return shapes_files(tmp_path_factory.mktemp("tools"))


def damaged_copy(path: Path, target: Path) -> Path:
    """The same file with one weight tensor (the class head's output conv) perturbed."""
    model = onnx.load(str(path))
    init = max((i for i in model.graph.initializer if "class_net" in i.name and "predict" in i.name),
               key=lambda i: int(np.prod(i.dims)))
    w = numpy_helper.to_array(init)
    init.CopyFrom(numpy_helper.from_array((w + np.random.default_rng(0).normal(0, 3 * w.std(), w.shape)).astype(w.dtype),
                                          init.name))
    onnx.save(model, str(target))
    return target


def test_compare_pass_and_fail(files, tmp_path):
    bad = damaged_copy(files["fp32"], tmp_path / "damaged.onnx")
    ok = cli("compare", "--reference", "shapes_d0", "--target", files["fp32"], "--target", files["fp16"],
             "--max-images", 6, "--output", tmp_path / "ok")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.count("=> PASS") == 2
    fail = cli("compare", "--reference", "shapes_d0", "--target", bad, "--max-images", 6, "--output", tmp_path / "bad")
    assert fail.returncode == 1 and "FAIL" in fail.stdout
    report = json.loads((tmp_path / "bad" / "compare.json").read_text())
    target = report["targets"][0]
    assert target["pass"] is False and target["failures"]
    for key in ("f1", "mean_iou", "mean_score_delta", "max_score_delta"):
        assert isinstance(target[key], float)
    for out in ("boxes", "scores"):
        assert {"max_abs", "mean_abs", "max_rel", "mean_rel", "cosine"} <= set(target[out])
    assert (tmp_path / "bad" / "worst_damaged.png").is_file()


def test_bench_statistics_on_a_fake_clock():
    now = [0.0]
    durations = iter([0.010, 0.020, 0.030, 0.040, 0.050] * 4)

    def clock():
        return now[0]

    def step():
        d = next(durations)
        now[0] += d
        return {"inference": d * 1000}

    result = run_benchmark(step, batch=2, warmup=0, iterations=5, clock=clock)
    assert result.iterations == 5 and result.wall_s == pytest.approx(0.15)
    assert result.total.mean == pytest.approx(30.0) and result.total.median == pytest.approx(30.0)
    assert result.total.min == pytest.approx(10.0) and result.total.max == pytest.approx(50.0)
    assert result.total.p90 == pytest.approx(46.0) and result.throughput == pytest.approx(10 / 0.15)
    assert result.unstable                                   # CV 47%
    assert latency_stats([5.0] * 10).cv == 0.0
    timed = run_benchmark(step, batch=1, warmup=0, iterations=1, duration=0.1, clock=clock)
    assert timed.iterations >= 3                             # duration wins over iterations


def test_bench_cli_real_run(files, tmp_path):
    out = cli("bench", "--model", files["fp32"], "--warmup", 1, "--iterations", 3, "--json", tmp_path / "b.json")
    assert out.returncode == 0, out.stderr
    assert "Throughput:" in out.stdout and "percentile(99%)" in out.stdout
    data = json.loads((tmp_path / "b.json").read_text())
    assert data["iterations"] == 3 and data["throughput_img_s"] > 0
    assert {"preprocess", "inference", "postprocess"} <= set(data["phases_ms"])


def test_eval_cli(files, tmp_path):
    annotations = write_dataset(tmp_path / "val", 12, seed=5, progress=False)
    out = cli("eval", "--model", files["fp32"], "--images", tmp_path / "val" / "images", "--annotations", annotations,
              "--output", tmp_path / "results.json")
    assert out.returncode == 0, out.stderr
    metrics = json.loads(out.stdout.strip().splitlines()[-1])
    assert metrics["AP50"] >= 0.6 and 0 < metrics["AP"] <= metrics["AP50"]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results and {r["category_id"] for r in results} <= set(range(1, 7))


def test_triton_configs_parse_with_tritons_schema(files, tmp_path):
    onnxnms = export_onnx(ExportSettings(model="shapes_d0", output=tmp_path / "s.onnxnms.onnx", nms="onnx",
                                         dynamic_batch=(1, 4, 8)))
    folder = triton_repository(TritonSettings(model=onnxnms, output=tmp_path / "repo"))
    config = validate_config((folder / "config.pbtxt").read_text(), "test")
    assert config.max_batch_size == 8 and config.platform == "onnxruntime_onnx"
    assert list(config.input[0].dims) == [3, 256, 256] and config.dynamic_batching.max_queue_delay_microseconds == 100
    assert [o.name for o in config.output] == ["num_detections", "detection_boxes", "detection_scores",
                                               "detection_classes"]
    assert (folder / "1" / "model.onnx").is_file()
    engine = tmp_path / "s.engine"                          # an engine is described by its sidecar
    engine.write_bytes(b"\0" * 64)
    meta = {p.key: p.value for p in onnx.load(str(files["fp32"])).metadata_props}
    write_sidecar(engine, {"tensorrt_version": "10.13.0", "onnx_metadata": meta})
    static = validate_config((triton_repository(TritonSettings(model=engine, output=tmp_path / "repo")) /
                              "config.pbtxt").read_text(), "test")
    assert static.platform == "tensorrt_plan" and static.max_batch_size == 1
    engine.write_bytes(b"\1" * 64)                          # replaced after its build: refused
    with pytest.raises(DeployError, match="sha256 differs"):
        triton_repository(TritonSettings(model=engine, output=tmp_path / "repo4"))
    with pytest.raises(DeployError, match="cannot run EfficientNMS_TRT"):
        triton_repository(TritonSettings(model=files["fp32"], output=tmp_path / "repo2"))
    broken = (folder / "config.pbtxt").read_text().replace("max_batch_size", "max_batch")
    with pytest.raises(DeployError, match="not a valid Triton model config"):
        validate_config(broken, "broken")
    for bad, message in ((dict(name="../../evil"), "must be one folder name"), (dict(name="a/b"), "not a path"),
                         (dict(instances=0), "--instances must be at least 1"),
                         (dict(max_batch_size=-1), "--max-batch-size must be >= 0")):
        with pytest.raises(DeployError, match=message):
            triton_repository(TritonSettings(model=onnxnms, output=tmp_path / "repo3", **bad))
    assert not (tmp_path / "repo3").exists() and not (tmp_path / "evil").exists()


def test_infer_writes_pictures_and_json(files, tmp_path):
    out = cli("infer", "--model", files["fp32"], "--input", files["calib"], "--output", tmp_path / "inf")
    assert out.returncode == 0, out.stderr
    pngs = list((tmp_path / "inf").rglob("*.png"))         # the input's layout mirrored: images/<name>.png.png
    assert len(pngs) == 32 and all(p.name.endswith(".png.png") and p.parent.name == "images" for p in pngs)
    detections = json.loads((tmp_path / "inf" / "detections.json").read_text())
    assert detections and all(len(d["bbox"]) == 4 for d in detections)
    bad = cli("infer", "--model", files["fp32"], "--input", tmp_path / "missing", "--output", tmp_path / "x")
    assert bad.returncode == 2 and "missing: no such file or folder" in bad.stderr
    assert not (tmp_path / "x").exists()                   # failed before writing: no empty folder left


@pytest.mark.integration   # 70 s: the slow tier (make test-integration)
def test_pipeline_end_to_end(tmp_path):
    require_modelopt()
    from effdet_deploy.pipeline import PipelineSettings, run_pipeline

    out = tmp_path / "pipe"
    run = run_pipeline(PipelineSettings(model="shapes_d0", output=out, calib_images=8, eval_images=10,
                                        compare_images=4, bench_iterations=2))
    for name in ("report.md", "summary.json", "latency.png", "accuracy_vs_latency.png", "shapes_d0.fp32.onnx",
                 "shapes_d0.fp32-onnxnms.onnx", "shapes_d0.fp16.onnx", "shapes_d0.int8.onnx", "shapes_d0.int8.trt86.onnx"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["parity"]) == {"fp32", "fp32-onnxnms", "fp16", "int8", "int8-trt86"}
    assert set(summary["accuracy"]) == {"pytorch", "fp32", "fp32-onnxnms", "fp16", "int8", "int8-trt86"}
    assert all(p["pass"] for k, p in summary["parity"].items() if not k.startswith("int8"))
    assert any("TensorRT" in n for n in summary["notes"]) or "fp32-trt" in summary["artifacts"]
    assert all((out / p).is_file() for p in run.pictures)
    assert not (out / "INCOMPLETE").exists()                # a finished run drops its INCOMPLETE mark (issue 25)
    report = (out / "report.md").read_text()
    assert "## Parity against PyTorch" in report and "![latency.png](latency.png)" in report


def test_pipeline_checks_its_inputs_before_the_first_step(tmp_path):
    """A bad flag is one error naming it, raised before any export and before the output folder exists."""
    from effdet_deploy.pipeline import PipelineSettings, run_pipeline

    (tmp_path / "no_images").mkdir()
    (tmp_path / "garbage.pth").write_bytes(b"not a checkpoint")
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "1.png").write_bytes(b"listed by suffix only")
    (tmp_path / "not_coco.json").write_text('{"images": "x"}')
    (tmp_path / "empty.json").write_text('{"images": [], "annotations": [], "categories": []}')
    out = tmp_path / "pipe"
    cases = [({"calib_dir": tmp_path / "missing"}, "missing: no such file or folder"),
             ({"calib_dir": tmp_path / "no_images"}, "no_images: no images found"),
             ({"images": tmp_path / "no_images"}, "--images and --annotations go together"),
             ({"images": tmp_path / "no_images", "annotations": tmp_path / "a.json"}, "no_images: no images found"),
             ({"checkpoint": tmp_path / "garbage.pth"}, "garbage.pth: not a readable PyTorch checkpoint"),
             ({"eval_images": 0}, "--eval-images must be at least 1, got 0"),
             ({"bench_iterations": -1}, "--bench-iterations must be at least 1"),
             ({"image_size": 0}, "--image-size must be at least 1, got 0"),
             ({"images": tmp_path / "images", "annotations": tmp_path / "not_coco.json"}, "not_coco.json: not COCO"),
             ({"images": tmp_path / "images", "annotations": tmp_path / "empty.json"}, "empty.json: .*no images")]
    for overrides, message in cases:
        with pytest.raises(DeployError, match=message):
            run_pipeline(PipelineSettings(model="shapes_d0", output=out, **overrides))
        assert not out.exists(), overrides
