"""`infer` as a user meets it: COCO results (category ids through eval's class map, image ids from
--annotations or file names), pictures that never collide, its own output never read back, unreadable
images skipped and counted, --iou/--max-det filters, and no output folder left behind by a failure."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from effdet.synthetic import render, write_dataset
from runtime.coco_eval import coco_map, load_annotations
from optional_deps import needs_pycocotools

ROOT = Path(__file__).resolve().parents[1]


def infer(*args):
    return subprocess.run([sys.executable, "-m", "effdet_deploy", "infer", "--model", "shapes_d0", *map(str, args)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.fixture()
def folder(tmp_path):
    """a.jpg and a.png side by side, sub/a.png below, and one file that is not an image."""
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    for i, name in enumerate(("a.jpg", "a.png", "sub/a.png")):
        Image.fromarray(render(31, i).image).save(root / name)
    (root / "broken.jpg").write_bytes(b"not an image")
    return root


def test_pictures_never_collide_and_output_is_not_read_back(folder):
    out = folder / "out"                                 # the output folder inside the input folder
    for _ in range(2):
        run = infer("--input", folder, "--output", out)
        assert run.returncode == 0, run.stderr
        assert "skipped 1 unreadable: broken.jpg" in run.stdout and "[4/4]" in run.stdout   # never out/*.png
    pictures = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert pictures == ["a.jpg.png", "a.png.png", "sub/a.png.png"]
    results = json.loads((out / "detections.json").read_text())
    assert {r["image_id"] for r in results} == {"a.jpg", "a.png", "sub/a.png"}
    assert {r["category_id"] for r in results} <= set(range(1, 7))          # class c -> c + 1 without a dataset
    assert all(r["score"] >= 0.3 and len(r["bbox"]) == 4 for r in results)   # the one default threshold


@needs_pycocotools
def test_coco_results_with_annotations(tmp_path):
    annotations = write_dataset(tmp_path / "val", 6, seed=5, progress=False)
    out = tmp_path / "out"
    run = infer("--input", tmp_path / "val" / "images", "--output", out, "--annotations", annotations)
    assert run.returncode == 0, run.stderr
    coco = load_annotations(annotations)
    results = json.loads((out / "detections.json").read_text())
    assert {r["image_id"] for r in results} <= {im["id"] for im in coco["images"]}
    assert coco_map(coco, results)["AP50"] > 0.5       # loadable by pycocotools and right: the ids line up


def test_iou_and_max_det_filter(tmp_path, folder):
    few = infer("--input", folder / "a.png", "--output", tmp_path / "few", "--max-det", 1, "--score-threshold", 0)
    assert few.returncode == 0, few.stderr
    assert len(json.loads((tmp_path / "few" / "detections.json").read_text())) == 1
    many = infer("--input", folder / "a.png", "--output", tmp_path / "many", "--score-threshold", 0)
    strict = infer("--input", folder / "a.png", "--output", tmp_path / "strict", "--score-threshold", 0,
                   "--iou", 0.05)
    counts = [len(json.loads((tmp_path / n / "detections.json").read_text())) for n in ("many", "strict")]
    assert counts[0] > counts[1] >= 1


def test_failures_leave_no_output_folder(tmp_path, folder):
    missing_model = subprocess.run([sys.executable, "-m", "effdet_deploy", "infer", "--model", tmp_path / "no.onnx",
                                    "--input", folder, "--output", tmp_path / "out1"], cwd=ROOT, capture_output=True,
                                   text=True, timeout=300)
    assert missing_model.returncode == 2 and "no.onnx: file not found" in missing_model.stderr
    only_broken = infer("--input", folder / "broken.jpg", "--output", tmp_path / "out2")
    assert only_broken.returncode == 2 and "none of the 1 images could be read" in only_broken.stderr
    assert not (tmp_path / "out1").exists() and not (tmp_path / "out2").exists()


def test_classes_filter_pictures_and_detections_json(tmp_path, folder, capsys):
    """--classes by name or index (Ultralytics' classes=[...]): detections.json and the pictures keep only those
    classes, exactly the unfiltered run's detections of them; an unknown class is one line listing the valid."""
    from effdet_deploy.cli import main

    base = ["infer", "--model", "shapes_d0", "--input", str(folder / "a.png"), "--score-threshold", "0.05"]
    assert main([*base, "--output", str(tmp_path / "all")]) == 0
    every = json.loads((tmp_path / "all" / "detections.json").read_text())
    kept = {r["category_id"] for r in every}
    assert len(kept) >= 2                                           # a filter that can remove something
    one = min(kept) - 1                                             # a model class present (category = class + 1)
    names = ("circle", "square", "triangle", "star", "hexagon", "cross")
    assert main([*base, "--output", str(tmp_path / "some"), "--classes", f"{names[one]},{one}"]) == 0
    some = json.loads((tmp_path / "some" / "detections.json").read_text())
    assert some == [r for r in every if r["category_id"] == one + 1]
    assert (tmp_path / "some" / "a.png.png").read_bytes() != (tmp_path / "all" / "a.png.png").read_bytes()
    capsys.readouterr()
    assert main([*base, "--output", str(tmp_path / "bad"), "--classes", "dog"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("--classes: shapes_d0 has no class 'dog' (6 classes: 0 circle, 1 square, 2 triangle, "
                        "3 star, 4 hexagon, 5 cross)") and "\n" not in err
    assert not (tmp_path / "bad").exists()
