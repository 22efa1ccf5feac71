"""The synthetic shapes set is deterministic and well-formed; COCO evaluation scores known predictors
as expected (perfect = 1.0, shifted boxes lower by the amount IoU thresholds imply)."""
import json

import numpy as np
import pytest
from PIL import Image

from effdet.synthetic import CLASS_NAMES, SynthSpec, coco_dataset, render, write_dataset
from runtime.coco_eval import (category_mapping, coco_map, coco_map_of_parts, detection_results, evaluate_detector,
                               load_annotations)
from runtime.errors import DeployError
from runtime.result import Detections
from optional_deps import needs_pycocotools


def test_render_is_deterministic_and_independent_of_set_size():
    a, b = render(3, 5), render(3, 5)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.boxes, b.boxes)
    assert not np.array_equal(render(3, 6).image, a.image)
    pixels, coco = coco_dataset(3, 6)
    assert np.array_equal(pixels[5], a.image)          # image i does not depend on how many are asked for


def test_samples_are_well_formed():
    spec = SynthSpec()
    counts = np.zeros(len(CLASS_NAMES), int)
    for i in range(40):
        s = render(0, i)
        assert s.image.shape == (spec.height, spec.width, 3) and s.image.dtype == np.uint8
        assert 1 <= len(s.boxes) <= spec.max_objects and len(s.boxes) == len(s.classes)
        assert (s.boxes[:, 2] > s.boxes[:, 0]).all() and (s.boxes[:, 3] > s.boxes[:, 1]).all()
        assert (s.boxes >= 0).all() and (s.boxes[:, 2] <= spec.width).all() and (s.boxes[:, 3] <= spec.height).all()
        counts += np.bincount(s.classes, minlength=len(CLASS_NAMES))
    assert (counts > 0).all()                           # every class appears


def test_write_dataset(tmp_path):
    path = write_dataset(tmp_path, 3, seed=2, progress=False)
    coco = load_annotations(path)
    assert [c["id"] for c in coco["categories"]] == [1, 2, 3, 4, 5, 6]
    assert len(coco["images"]) == 3 and all((tmp_path / "images" / im["file_name"]).is_file() for im in coco["images"])
    assert all(a["category_id"] in range(1, 7) for a in coco["annotations"])
    with pytest.raises(DeployError, match="at least 1"):
        write_dataset(tmp_path / "x", 0, seed=2)


def test_write_dataset_is_the_in_memory_set_written_one_image_at_a_time(tmp_path, monkeypatch):
    """`synth` streams: each PNG is on disk before the next image is rendered, and the files are exactly the
    in-memory set (annotations.json byte for byte, PNG pixels)."""
    import effdet.synthetic as synthetic

    spec = SynthSpec(height=64, width=64)
    pixels, coco = coco_dataset(2, 4, spec)
    on_disk_before = []

    def render_and_look(seed, index, spec):
        on_disk_before.append(sorted(p.name for p in (tmp_path / "images").glob("*.png")))
        return render(seed, index, spec)

    monkeypatch.setattr(synthetic, "render", render_and_look)
    path = write_dataset(tmp_path, 4, seed=2, spec=spec, progress=False)
    assert path.read_bytes() == json.dumps(coco).encode()
    assert on_disk_before == [[f"2_{i:06d}.png" for i in range(n)] for n in range(4)]
    for i in (0, 3):
        assert np.array_equal(np.asarray(Image.open(tmp_path / "images" / f"2_{i:06d}.png")), pixels[i])


def test_write_dataset_failing_part_way_leaves_nothing(tmp_path, monkeypatch):
    """A failure at image 3 of 5 (here a disk-full error) removes the PNGs it created and the folders it
    made; no annotations.json, no temporary file; files that were there before stay."""
    import effdet.synthetic as synthetic

    def render_until_the_disk_fills(seed, index, spec):
        if index == 2:
            raise OSError(28, "No space left on device")
        return render(seed, index, spec)

    monkeypatch.setattr(synthetic, "render", render_until_the_disk_fills)
    (tmp_path / "kept" / "images").mkdir(parents=True)              # a rerun: an image of the same set is there
    (tmp_path / "kept" / "images" / "2_000000.png").write_bytes(b"an earlier run's")
    for output in (tmp_path / "new" / "data", tmp_path / "kept"):
        with pytest.raises(OSError, match="No space"):
            write_dataset(output, 5, seed=2, spec=SynthSpec(height=64, width=64), progress=False)
    left = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    assert left == ["kept", "kept/images", "kept/images/2_000000.png"], left


def test_bad_annotation_file(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"images": []}))
    with pytest.raises(DeployError, match="a.json: not COCO"):
        load_annotations(tmp_path / "a.json")


def _oracle(coco, shift=0.0):
    """A predictor that returns the ground truth, optionally shifted right by `shift` x box width."""
    by_image = {}
    for a in coco["annotations"]:
        x, y, w, h = a["bbox"]
        by_image.setdefault(a["image_id"], []).append(([x + shift * w, y, x + w + shift * w, y + h], a["category_id"] - 1))
    ids = [im["id"] for im in coco["images"]]
    state = {"next": 0}

    def detect(images):
        out = []
        for _ in images:
            rows = by_image.get(ids[state["next"]], [])
            state["next"] += 1
            out.append(Detections(np.asarray([r[0] for r in rows], np.float32).reshape(-1, 4),
                                  np.linspace(0.9, 0.5, len(rows)).astype(np.float32),
                                  np.asarray([r[1] for r in rows], np.int64)))
        return out
    return detect


@needs_pycocotools
def test_coco_map_of_known_predictors():
    pixels, coco = coco_dataset(4, 20)
    perfect = evaluate_detector(_oracle(coco), pixels, coco)
    assert perfect["AP"] == pytest.approx(1.0) and perfect["AP50"] == pytest.approx(1.0)
    # shifting by 0.2 w gives IoU = 0.8/1.2 = 0.667: matched at thresholds .50-.65 (4 of 10) only
    shifted = evaluate_detector(_oracle(coco, 0.2), pixels, coco)
    assert shifted["AP50"] == pytest.approx(1.0)
    assert shifted["AP75"] == pytest.approx(0.0)
    assert shifted["AP"] == pytest.approx(0.4, abs=0.02)


@needs_pycocotools
def test_coco_map_of_parts_scores_each_group_alone():
    pixels, coco = coco_dataset(4, 21)
    exact, shifted = (detection_results(_oracle(coco, s), pixels, coco) for s in (0.0, 0.2))
    first_ten = {im["id"] for im in coco["images"][:10]}
    mixed = [r for r in exact if r["image_id"] in first_ten] + [r for r in shifted if r["image_id"] not in first_ten]
    parts = [m["AP"] for m in coco_map_of_parts(coco, mixed, 2)]      # 10 images, then 11 (the remainder)
    assert parts == [pytest.approx(1.0), pytest.approx(0.4, abs=0.02)]
    assert 0.42 < coco_map(coco, mixed)["AP"] < 0.98
    with pytest.raises(DeployError, match="parts must be between 1 and the 21 images"):
        coco_map_of_parts(coco, mixed, 22)


@needs_pycocotools
def test_category_mapping_and_empty_results():
    coco = {"images": [{"id": 1, "height": 10, "width": 10}], "annotations": [],
            "categories": [{"id": 7, "name": "b"}, {"id": 3, "name": "a"}]}
    assert category_mapping(coco) == [3, 7]
    coco80 = {"categories": [{"id": i} for i in range(1, 91) if i not in (12, 26, 29, 30, 45, 66, 68, 69, 71, 83)]}
    assert len(coco80["categories"]) == 80
    assert category_mapping(coco80, 90) == list(range(1, 91))            # effdet COCO: class c -> id c + 1
    assert category_mapping(coco80, 80)[11] == 13                         # an 80-class model: sorted ids
    assert category_mapping(coco80, 90, "sorted")[11] == 13
    with pytest.raises(DeployError, match="--class-map"):
        category_mapping(coco80, 90, "bogus")
    assert coco_map(coco, [])["AP"] == 0.0
