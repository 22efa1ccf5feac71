"""compare/pipeline never PASS on nothing (issue 13.1): raw network outputs are compared too, so a damaged
file fails even where neither file detects anything; too few matched detections is INCONCLUSIVE (exit 3);
warnings for class-count / input-size mismatches and for built-in scenes on a model not trained on them.
Issue 25: unreadable images skipped and counted (compare and eval), n/a where nothing was compared, --atol/--rtol
at every level, distinct outputs for same-named targets, --threads in every session."""
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from PIL import Image

from effdet.synthetic import render
from optional_deps import needs_pycocotools
from effdet_deploy.reporting import Comparison, mismatch_warnings, worst_picture
from export.onnx_export import export_onnx
from export.settings import ExportSettings
from runtime.model_info import ModelInfo
from runtime.parity import MIN_MATCHED, TOLERANCES, compare_detections, compare_raw
from runtime.result import Detections

ROOT = Path(__file__).resolve().parents[1]


def cli(*args):
    return subprocess.run([sys.executable, "-m", "effdet_deploy", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """shapes_d0 at 128 (FP32, ONNX NMS), the same file with its first conv x -3, and plain gray images."""
    tmp = tmp_path_factory.mktemp("verdicts")
    original = export_onnx(ExportSettings(model="shapes_d0", output=tmp / "orig.onnx", image_size=(128, 128),
                                          nms="onnx", score_threshold=0.05))
    model = onnx.load(str(original))
    conv = next(n for n in model.graph.node if n.op_type == "Conv")
    init = next(i for i in model.graph.initializer if i.name == conv.input[1])
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * np.float32(-3), init.name))
    onnx.save(model, str(tmp / "damaged.onnx"))
    blank = tmp / "blank"
    blank.mkdir()
    for i in range(3):
        Image.fromarray(np.full((96, 160, 3), 80 + 40 * i, np.uint8)).save(blank / f"gray{i}.png")
    return {"original": original, "damaged": tmp / "damaged.onnx", "blank": blank, "tmp": tmp}


def test_damaged_file_fails_where_nothing_is_detected(files):
    out = files["tmp"] / "damaged-out"
    r = cli("compare", "--reference", files["original"], "--target", files["damaged"], "--images", files["blank"],
            "--output", out)
    assert r.returncode == 1, r.stdout + r.stderr
    target = json.loads((out / "compare.json").read_text())["targets"][0]
    assert target["verdict"] == "FAIL" and target["matched"] == 0
    assert target["raw"]["pass"] is False and any(f.startswith("raw ") for f in target["failures"])
    assert target["raw"]["images"] == 3 and target["inconclusive"]
    assert "on 3 image(s)" in r.stdout and "score >= 0.3" in r.stdout


def test_nothing_detected_is_inconclusive_exit_3(files):
    """0 vs 0 detections: F1, IoU and the matched errors are n/a (null in JSON), not 1.000; the raw level still
    compares every anchor, but only fails a target: without detections to match it stays INCONCLUSIVE."""
    out = files["tmp"] / "same-out"
    r = cli("compare", "--reference", files["original"], "--target", files["original"], "--images", files["blank"],
            "--output", out)
    assert r.returncode == 3, r.stdout + r.stderr
    assert "INCONCLUSIVE" in r.stdout and "0 matched" in r.stdout
    row = next(line for line in r.stdout.splitlines() if line.split()[2:3] == ["detections"])
    assert "F1 n/a (>= 0.99)" in row and "mean IoU n/a" in row and "max score error n/a" in row and "1.000" not in row
    target = json.loads((out / "compare.json").read_text())["targets"][0]
    assert target["raw"]["pass"] is True and target["raw"]["scores"]["max_abs"] == 0.0
    assert target["pass"] is False and target["verdict"] == "INCONCLUSIVE"
    assert target["f1"] is None and target["mean_iou"] is None and target["scores"] is None
    assert target["precision_det"] is None and target["recall"] is None and target["mean_score_delta"] is None
    assert {c["label"]: c["value"] for c in target["checks"]}["F1"] is None


def _dets(n, score=0.9, shift=0.0):
    boxes = np.array([[10 * i + shift, 0, 10 * i + 8 + shift, 8] for i in range(n)], np.float32).reshape(-1, 4)
    return Detections(boxes, np.full(n, score, np.float32), np.zeros(n, np.int64))


def test_detection_level_needs_enough_matches():
    few = compare_detections("t", "fp32", [_dets(MIN_MATCHED - 1)], [_dets(MIN_MATCHED - 1)])
    assert few.verdict == "INCONCLUSIVE" and str(MIN_MATCHED) in few.inconclusive[0]
    enough = compare_detections("t", "fp32", [_dets(MIN_MATCHED)], [_dets(MIN_MATCHED)])
    assert enough.verdict == "PASS" and bool(enough)
    lost = compare_detections("t", "fp32", [_dets(3)], [_dets(0)])     # evidence of a difference: FAIL, not "too few"
    assert lost.verdict == "FAIL"


def test_raw_level_judges_every_anchor():
    rng = np.random.default_rng(0)
    boxes, scores = rng.uniform(0, 100, (50, 4)).astype(np.float32), rng.uniform(0, 0.01, (50, 3)).astype(np.float32)
    same = compare_raw([((boxes, scores), (boxes, scores))], TOLERANCES["fp32"], (256, 256))
    assert same and same.scores.cosine == pytest.approx(1.0) and same.anchors == 50
    off = compare_raw([((boxes, scores), (boxes + 0.5, scores * 1.5))], TOLERANCES["fp32"], (256, 256))
    assert not off and any("raw mean box error" in f for f in off.failures)
    result = compare_detections("t", "fp32", [_dets(MIN_MATCHED)], [_dets(MIN_MATCHED)])
    result.add_raw(off)
    assert result.verdict == "FAIL" and result.to_json()["raw"]["pass"] is False


def _info(**kw):
    base = dict(model="tf_efficientdet_d0", image_size=(512, 512), mean=(0, 0, 0), std=(1, 1, 1), num_classes=90)
    return ModelInfo(**{**base, **kw})


def test_mismatch_warnings():
    assert mismatch_warnings(_info(), _info(), builtin_images=False) == []
    found = " ".join(mismatch_warnings(_info(), _info(num_classes=6, image_size=(256, 256)), builtin_images=True))
    assert "90 classes, target 6" in found and "512x512, target 256x256" in found and "not trained on them" in found
    assert mismatch_warnings(_info(model="shapes_d0"), _info(model="shapes_d0"), builtin_images=True) == []


def test_worst_picture_draws_only_detections_above_the_threshold():
    image = np.full((40, 60, 3), 128, np.uint8)
    low, high = _dets(1, score=0.1), _dets(1, score=0.9)
    result = compare_detections("t", "fp32", [low], [high])
    picture = np.asarray(worst_picture(Comparison([result], [[low], [high]], ("circle",)), 0, image, ("ref", "t")))
    left, right = picture[20:, :60], picture[20:, 70:]
    assert (left == 128).all()               # the 0.1 detection is not drawn
    assert (right != 128).any()              # the 0.9 one is


def test_pipeline_compare_of_a_model_not_trained_on_the_scenes_is_inconclusive(tmp_path):
    """The issue's case: a user's model (here D0 with seeded random weights) on the built-in shapes scenes
    detects nothing on either side; the pipeline said PASS, now INCONCLUSIVE with a warning, raw level PASS."""
    import torch

    from effdet import create_model
    from effdet_deploy.commands.compare import EXIT_CODES, verdict_of
    from effdet_deploy.pipeline import PipelineSettings, Run, compare_all

    torch.manual_seed(0)
    torch.save(create_model("tf_efficientdet_d0", image_size=128).state_dict(), tmp_path / "user.pth")
    onnx_file = export_onnx(ExportSettings(model="tf_efficientdet_d0", checkpoint=tmp_path / "user.pth",
                                           output=tmp_path / "user.onnx", image_size=(128, 128), nms="onnx"))
    run = Run(PipelineSettings(model="tf_efficientdet_d0", output=tmp_path, image_size=128, compare_images=3),
              reference=str(tmp_path / "user.pth"), artifacts={"fp32": onnx_file})
    compare_all(run)
    parity = run.parity["fp32"]
    assert parity["verdict"] == "INCONCLUSIVE" and parity["matched"] == 0 and parity["raw"]["pass"] is True
    assert any("not trained on them" in note for note in run.notes)
    assert "--images" in " ".join(parity["inconclusive"])
    assert EXIT_CODES[verdict_of([p["verdict"] for p in run.parity.values()])] == 3
    images = tmp_path / "mine"          # issue 25: with --images given, compare runs on them and never asks for them
    images.mkdir()
    for i in range(2):
        Image.fromarray(np.full((64, 96, 3), 60 * i, np.uint8)).save(images / f"{i}.png")
    given = Run(PipelineSettings(model="tf_efficientdet_d0", output=tmp_path, image_size=128, compare_images=3,
                                 images=images, annotations=tmp_path / "a.json"),
                reference=str(tmp_path / "user.pth"), artifacts={"fp32": onnx_file})
    compare_all(given)
    parity = given.parity["fp32"]
    assert parity["images"] == 2 and parity["verdict"] == "INCONCLUSIVE" and parity["raw"]["images"] == 2
    assert "--images" not in " ".join(parity["inconclusive"] + parity["warnings"] + given.notes)


def test_raw_box_limit_grows_with_the_input_size():
    """Box errors scale with the boxes: the same 0.1 px mean error passes at 512 (FP32 limit 0.15 px per 512)
    and fails at 256 (0.075 px there)."""
    rng = np.random.default_rng(1)
    boxes, scores = rng.uniform(0, 100, (50, 4)).astype(np.float32), rng.uniform(0, 0.01, (50, 3)).astype(np.float32)
    pair = [((boxes, scores), (boxes + np.float32(0.1), scores))]
    assert compare_raw(pair, TOLERANCES["fp32"], (512, 512))
    small = compare_raw(pair, TOLERANCES["fp32"], (256, 256))
    assert not small and len(small.failures) == 1 and small.failures[0].endswith("> 0.075")


# --- issue 25: bad images, --atol/--rtol at every level, distinct outputs, --threads -------------------------------

def bad_images(folder: Path) -> list[str]:
    """Six kinds of file that are no readable image, and a folder named like one; returns the six names."""
    from test_issue25_inputs import bomb_png

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    png, jpg = io.BytesIO(), io.BytesIO()
    picture = Image.fromarray(rng.integers(0, 255, (48, 48, 3), dtype=np.uint8))
    picture.save(png, "PNG")
    picture.save(jpg, "JPEG")
    kinds = {"empty.jpg": b"", "cut.png": png.getvalue()[:300], "cut.jpg": jpg.getvalue()[:400],
             "notes.jpg": b"a text file, not a picture\n", "data.png": rng.bytes(256), "huge.png": bomb_png()}
    for name, data in kinds.items():
        (folder / name).write_bytes(data)
    (folder / "folder.jpg").mkdir(exist_ok=True)       # root reads chmod-000 files: a folder is the 7th kind
    return sorted(kinds)


def run_cli(capsys, *argv):
    from effdet_deploy.cli import main

    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_unreadable_images_are_skipped_and_counted(files, capsys):
    folder = files["tmp"] / "mixed"
    bad = bad_images(folder)
    for i in range(2):
        Image.fromarray(render(31, i).image).save(folder / f"scene{i}.png")
    out = files["tmp"] / "mixed-out"
    code, stdout, _ = run_cli(capsys, "compare", "--reference", files["original"], "--target", files["original"],
                              "--images", folder, "--output", out)
    assert code in (0, 3), stdout
    assert sorted(line.split(": ")[1].split("/")[-1] for line in stdout.splitlines()
                  if line.startswith("skipped: ")) == bad
    assert "on 2 image(s)" in stdout and "6 unreadable skipped" in stdout
    report = json.loads((out / "compare.json").read_text())
    assert report["skipped_images"] == bad and report["images"] == ["scene0.png", "scene1.png"]
    assert report["targets"][0]["raw"]["images"] == 2
    for name in ("scene0.png", "scene1.png"):
        (folder / name).unlink()
    code, stdout, _ = run_cli(capsys, "compare", "--reference", files["original"], "--target", files["original"],
                              "--images", folder, "--output", out)
    assert code == 3 and "INCONCLUSIVE: none of the 6 image(s)" in stdout
    report = json.loads((out / "compare.json").read_text())
    assert report["verdict"] == "INCONCLUSIVE" and report["targets"] == [] and report["skipped_images"] == bad


@pytest.fixture(scope="module")
def fp16(files):
    from calibration.artifacts import QuantizeSettings, quantize_onnx
    from optional_deps import require_modelopt

    require_modelopt()
    return quantize_onnx(QuantizeSettings(onnx=files["original"], output=files["tmp"] / "orig.fp16.onnx",
                                          precision="fp16"))


def test_atol_and_rtol_reach_the_raw_level(files, fp16, capsys):
    """FP16 passes at its defaults; --atol 1e-9 fails it at the raw level too (before: only detections), with the
    limit printed beside the number; --rtol 1e-9 fails the raw mean relative score error."""
    from effdet_deploy.reporting import compare_targets, live_reference

    images = [render(31, i).image for i in range(2)]
    ref = live_reference(str(files["original"]), images)
    default, = compare_targets(ref, [str(fp16)], images).results
    strict, = compare_targets(ref, [str(fp16)], images, atol=1e-9).results
    relative, = compare_targets(ref, [str(fp16)], images, rtol=1e-9).results
    assert default.precision == "fp16" and default.raw and 0 < default.raw.scores.max_abs <= TOLERANCES["fp16"]["raw_score_atol"]
    assert not strict.raw and any(f.startswith("raw max score error") and f.endswith("> 1e-09") for f in strict.raw.failures)
    assert strict.verdict == "FAIL" and strict.limits["raw_score_atol"] == strict.limits["score_atol"] == 1e-9
    assert strict.limits["box_atol"] == TOLERANCES["fp16"]["box_atol"]         # boxes keep their pixel limits
    assert not relative.raw and any("raw mean relative score error" in f for f in relative.raw.failures)
    out = files["tmp"] / "atol-out"
    code, stdout, _ = run_cli(capsys, "compare", "--reference", files["original"], "--target", fp16, "--atol", "1e-9",
                              "--max-images", 2, "--output", out)
    raw_row = next(line for line in stdout.splitlines() if line.split()[2:3] == ["raw"])
    assert code == 1 and "FAIL" in raw_row and "max score error" in raw_row and "(<= 1e-09)" in raw_row


def test_rtol_reaches_the_layers(files, fp16):
    from effdet_deploy.layer_command import LayerReference, compare_layers
    from effdet_deploy.layer_stats import over_tolerance
    from runtime.parity import tolerances

    images = [render(31, 0).image]
    ref = LayerReference.live(str(files["original"]), images, {}, None)
    plain = compare_layers(ref, str(fp16), images)
    strict = compare_layers(ref, str(fp16), images, rtol=1e-9)
    assert plain.limits == tolerances("fp16") and plain.limits["layer_rel"] is None
    first = strict.first_divergence()
    assert first is not None and any(m.startswith("mean rel") for m in first[1])
    assert plain.compared and not any(m.startswith("mean rel") for t in plain.compared
                                      for m in over_tolerance(plain.stats[t.name], plain.limits))


def test_same_named_targets_get_their_own_outputs(files, capsys):
    """a/m.onnx and b/m.onnx: two rows told apart, two pictures, two JSON entries; a file given twice once."""
    import shutil

    a, b = files["tmp"] / "a" / "m.onnx", files["tmp"] / "b" / "m.onnx"
    for path, source in ((a, files["original"]), (b, files["damaged"])):
        path.parent.mkdir(exist_ok=True)
        shutil.copy(source, path)
    out = files["tmp"] / "twins-out"
    code, stdout, _ = run_cli(capsys, "compare", "--reference", files["original"], "--target", a, "--target", b,
                              "--target", files["tmp"] / "b" / ".." / "b" / "m.onnx", "--images", files["blank"],
                              "--output", out)
    assert code == 1 and stdout.count("compared once") == 1
    report = json.loads((out / "compare.json").read_text())
    assert [t["label"] for t in report["targets"]] == ["a/m.onnx", "b/m.onnx"]
    assert [t["worst_picture"] for t in report["targets"]] == ["worst_a_m.png", "worst_b_m.png"]
    assert [t["verdict"] for t in report["targets"]] == ["INCONCLUSIVE", "FAIL"]
    assert (out / "worst_a_m.png").is_file() and (out / "worst_b_m.png").is_file()
    assert not (out / "worst_m.png").exists()
    assert any(line.startswith("a/m.onnx ") for line in stdout.splitlines())
    assert any(line.startswith("b/m.onnx ") for line in stdout.splitlines())


def test_threads_reach_every_session_compare_opens(files, capsys, monkeypatch):
    """--threads 1: each ONNX Runtime session of compare (reference and target, detections, raw twins and the
    --layers runs) is opened with one intra-op thread, as ONNX Runtime itself reports it."""
    import runtime.backends.onnxruntime_backend as ort_backend
    import runtime.onnx_session as onnx_session

    opened = []
    real = onnx_session.create_session

    def recording(*args, **kwargs):
        session = real(*args, **kwargs)
        opened.append(session.get_session_options().intra_op_num_threads)
        return session

    monkeypatch.setattr(onnx_session, "create_session", recording)
    monkeypatch.setattr(ort_backend, "create_session", recording)
    code, stdout, _ = run_cli(capsys, "compare", "--reference", files["original"], "--target", files["original"],
                              "--images", files["blank"], "--max-images", 1, "--layers", "--threads", 1,
                              "--output", files["tmp"] / "threads-out")
    assert code == 3 and "--threads 1 for ONNX Runtime" in stdout
    assert len(opened) >= 6 and set(opened) == {1}, opened


@needs_pycocotools
def test_eval_skips_unreadable_images_and_says_what_the_map_is_over(files, capsys):
    """Seven annotated images replaced by the six bad kinds and a folder: left out of the mAP with their objects,
    the denominator printed; all unreadable: INCONCLUSIVE, nothing written."""
    from effdet.synthetic import write_dataset

    annotations = write_dataset(files["tmp"] / "val", 9, seed=5, progress=False)
    coco = json.loads(annotations.read_text())
    folder = annotations.parent / "images"
    kinds = bad_images(files["tmp"] / "kinds")
    victims = coco["images"][:7]
    for entry, kind in zip(victims, kinds + ["a folder"]):
        (folder / entry["file_name"]).unlink()
        if kind == "a folder":
            (folder / entry["file_name"]).mkdir()                 # a folder where an image is listed
        else:
            (folder / entry["file_name"]).write_bytes((files["tmp"] / "kinds" / kind).read_bytes())
    results = files["tmp"] / "eval.json"
    code, stdout, _ = run_cli(capsys, "eval", "--model", files["original"], "--images", folder,
                              "--annotations", annotations, "--output", results)
    objects = sum(1 for a in coco["annotations"] if a["image_id"] in {im["id"] for im in victims})
    assert code == 0, stdout
    assert sum(line.startswith("eval: skipped: ") for line in stdout.splitlines()) == 7
    assert f"the mAP is over the 2 of 9 images that could be read, their {objects} annotated object(s) left out" in stdout
    assert {r["image_id"] for r in json.loads(results.read_text())} <= {im["id"] for im in coco["images"][7:]}
    for entry in coco["images"][7:]:
        (folder / entry["file_name"]).write_bytes(b"")
    results.unlink()
    code, stdout, _ = run_cli(capsys, "eval", "--model", files["original"], "--images", folder,
                              "--annotations", annotations, "--output", results)
    assert code == 3 and "INCONCLUSIVE" in stdout and "none of the 9 images could be read" in stdout
    assert not results.exists()
