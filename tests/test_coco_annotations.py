"""A COCO annotation file is checked before eval or infer use it: each broken entry is one DeployError naming
the file and the entry (exit 2 on the CLI, an existing --output left as it was), a dataset with nothing to
score is INCONCLUSIVE (exit 3, nothing written), and a valid one still evaluates."""
import copy
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from effdet.synthetic import write_dataset
from export.onnx_export import export_onnx
from export.settings import ExportSettings
from optional_deps import needs_pycocotools
from runtime.coco_eval import coco_map, load_annotations
from runtime.errors import DeployError

ROOT = Path(__file__).resolve().parents[1]

VALID = {"images": [{"id": 1, "file_name": "a.png", "height": 64, "width": 64},
                    {"id": 2, "file_name": "b.png", "height": 64, "width": 64}],
         "categories": [{"id": 1, "name": "square"}, {"id": 2, "name": "circle"}],
         "annotations": [{"image_id": 1, "category_id": 1, "bbox": [1, 2, 10, 12]},      # no iscrowd, no area
                         {"image_id": 2, "category_id": 2, "bbox": [5, 5, 8, 8], "iscrowd": 0, "area": 64.0}]}


def _set(*keys_and_value):
    """An edit of VALID: the value at the key path (a missing value deletes the last key)."""
    *keys, last, value = keys_and_value

    def edit(d):
        for k in keys:
            d = d[k]
        if value is _DELETE:
            del d[last]
        else:
            d[last] = value
    return edit


_DELETE = object()

BAD = [  # (edit, what the message must name)
    (_set("annotations", 1, "bbox", [1, 2, -5, "x"]), "annotations[1].bbox must be 4 finite numbers"),
    (_set("annotations", 0, "bbox", _DELETE), "annotations[0].bbox must be 4 finite numbers"),
    (_set("annotations", 0, "bbox", [1, 2, -5, 3]), "annotations[0].bbox"),
    (_set("annotations", 0, "bbox", [1, 2, float("nan"), 3]), "annotations[0].bbox"),
    (_set("annotations", 0, "bbox", [1, 2, 3]), "annotations[0].bbox"),
    (_set("annotations", 1, "image_id", 7), "annotations[1].image_id 7 is not an id in images"),
    (_set("annotations", 1, "image_id", [1]), "annotations[1].image_id [1] is not an id in images"),
    (_set("annotations", 0, "category_id", 9), "annotations[0].category_id 9 is not an id in categories"),
    (_set("annotations", 0, "iscrowd", 2), "annotations[0].iscrowd must be 0 or 1"),
    (_set("annotations", 0, "area", -1), "annotations[0].area"),
    (_set("images", 1, "file_name", _DELETE), "images[1].file_name must be a string"),
    (_set("images", 1, "id", 1), "images[1].id 1 repeats images[0].id"),
    (_set("images", 1, "file_name", "a.png"), "images[1].file_name 'a.png' repeats images[0].file_name"),
    (_set("images", 0, "id", "1"), "images[0].id must be an integer"),
    (_set("images", "x"), "images must be a list, got str"),
    (_set("images", [3]), "images[0] must be an object"),
    (_set("categories", 0, "name", _DELETE), "categories[0].name must be a string"),
    (_set("categories", 1, "id", 1), "categories[1].id 1 repeats categories[0].id"),
    (_set("annotations", {}), "annotations must be a list, got dict"),
]


def write(path: Path, edit=None) -> Path:
    data = copy.deepcopy(VALID)
    if edit is not None:
        edit(data)
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("edit, named", BAD)
def test_each_broken_entry_is_one_error_naming_file_and_entry(tmp_path, edit, named):
    path = write(tmp_path / "a.json", edit)
    with pytest.raises(DeployError, match="^" + re.escape(f"{path}: {named}")):
        load_annotations(path)


def test_valid_file_loads_unchanged(tmp_path):
    assert load_annotations(write(tmp_path / "a.json")) == VALID


@needs_pycocotools
def test_annotations_without_iscrowd_or_area_are_scored():
    """pycocotools reads both; they are optional in our format (area defaults to the box's w * h)."""
    perfect = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 0.9}
               for a in VALID["annotations"]]
    assert coco_map(VALID, perfect)["AP"] == pytest.approx(1.0)
    shifted = [{**r, "bbox": [r["bbox"][0] + 6, *r["bbox"][1:]]} for r in perfect]
    assert coco_map(VALID, shifted)["AP"] < 0.5


def cli(*args):
    return subprocess.run([sys.executable, "-m", "effdet_deploy", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("model") / "shapes128.onnx"
    return export_onnx(ExportSettings(model="shapes_d0", output=out, image_size=(128, 128)))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Two synthetic scenes on disk: the model reads them, so only the annotation file can stop eval."""
    return write_dataset(tmp_path_factory.mktemp("val"), 2, seed=3, progress=False)


def eval_cli(tmp_path, model, dataset, edit):
    """eval on the dataset's images with its annotation file edited, into an existing --output tmp/prev.json."""
    data = json.loads(dataset.read_text())
    edit(data)
    annotations = tmp_path / "a.json"
    annotations.write_text(json.dumps(data))
    return annotations, cli("eval", "--model", model, "--images", dataset.parent / "images",
                            "--annotations", annotations, "--output", tmp_path / "prev.json")


@pytest.mark.parametrize("edit, named", [BAD[0], BAD[1], BAD[6], BAD[10], BAD[13]])
def test_eval_cli_refuses_a_broken_file_before_writing(tmp_path, small_model, dataset, edit, named):
    previous = b'[{"earlier": "results"}]\n'
    (tmp_path / "prev.json").write_bytes(previous)
    path, run = eval_cli(tmp_path, small_model, dataset, edit)
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.stderr.strip().splitlines() == [run.stderr.strip()] and f"{path}: {named}" in run.stderr
    assert (tmp_path / "prev.json").read_bytes() == previous


@pytest.mark.parametrize("edit, why", [(_set("annotations", []), "no annotated objects on its 2 images"),
                                       (lambda d: d.update(images=[], annotations=[]), "lists no images"),
                                       (lambda d: [a.update(iscrowd=1) for a in d["annotations"]],
                                        "crowd regions, which COCO does not score")])
def test_eval_cli_nothing_to_evaluate_is_inconclusive(tmp_path, small_model, dataset, edit, why):
    _, run = eval_cli(tmp_path, small_model, dataset, edit)
    assert run.returncode == 3, run.stdout + run.stderr
    assert "INCONCLUSIVE" in run.stdout and why in run.stdout
    assert not (tmp_path / "prev.json").exists()


def test_infer_cli_refuses_a_broken_file(tmp_path, small_model, dataset):
    data = json.loads(dataset.read_text())
    del data["images"][1]["file_name"]
    annotations = tmp_path / "a.json"
    annotations.write_text(json.dumps(data))
    run = cli("infer", "--model", small_model, "--input", dataset.parent / "images", "--output", tmp_path / "out",
              "--annotations", annotations)
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.stderr.strip() == (f"effdet-deploy infer: error: {annotations}: "
                                  "images[1].file_name must be a string, got None")
    assert not (tmp_path / "out" / "detections.json").exists()


@needs_pycocotools
def test_eval_cli_valid_dataset_still_evaluates(tmp_path, small_model):
    annotations = write_dataset(tmp_path / "val", 3, seed=5, progress=False)
    run = cli("eval", "--model", small_model, "--images", tmp_path / "val" / "images", "--annotations", annotations,
              "--output", tmp_path / "results.json")
    assert run.returncode == 0, run.stdout + run.stderr
    metrics = json.loads(run.stdout.strip().splitlines()[-1])
    assert set(metrics) == {"AP", "AP50", "AP75", "APs", "APm", "APl"} and 0 <= metrics["AP"] <= 1
    results = json.loads((tmp_path / "results.json").read_text())
    assert {r["image_id"] for r in results} <= {im["id"] for im in load_annotations(annotations)["images"]}
