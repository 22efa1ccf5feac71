"""One score-threshold story (runtime/thresholds.py): one default for the Detector, effdet.predict.detect,
infer and the pipeline; inference-time score/IoU/max-detection filters within what the file keeps (its
NMS settings are the floor: asking past them warns once); eval keeps every detection the file keeps."""
import json
import logging

import numpy as np
import pytest

from effdet import create_model
from effdet.predict import detect as reference_detect
from effdet.synthetic import render, write_dataset
from runtime import Detector
from runtime.boxes import box_iou
from runtime.coco_eval import evaluate_detector, evaluate_files, load_annotations
from runtime.errors import DeployError
from runtime.thresholds import DEFAULT_SCORE_THRESHOLD, apply_filters
from runtime.result import Detections
from optional_deps import needs_pycocotools


@pytest.fixture(scope="module")
def det():
    return Detector("shapes_d0")     # PyTorch backend: the file's floor is 0.001, IoU 0.5, 100 boxes


@pytest.fixture(scope="module")
def scenes():
    return [render(31, i).image for i in range(4)]


def test_one_default_for_api_and_reference(det, scenes):
    assert det.score_threshold == DEFAULT_SCORE_THRESHOLD == 0.3
    model = create_model("shapes_d0", pretrained=True)
    for got, ref in zip(det.detect(scenes), reference_detect(model, scenes)):
        assert len(got) == len(ref) > 0 and (got.scores >= DEFAULT_SCORE_THRESHOLD).all()
        np.testing.assert_allclose(got.scores, ref.scores, atol=1e-5)


def test_score_zero_is_everything_the_file_keeps(det, scenes):
    everything = det.detect(scenes[0], score_threshold=0.0)
    default = det.detect(scenes[0])
    assert len(everything) == det.info.max_detections > len(default)      # 100 boxes down to 0.001
    assert everything.scores.min() < DEFAULT_SCORE_THRESHOLD
    np.testing.assert_array_equal(default.scores, everything.scores[everything.scores >= DEFAULT_SCORE_THRESHOLD])


def test_per_call_filters_narrow_what_the_file_keeps(det, scenes):
    everything = det.detect(scenes[1], score_threshold=0.0)
    strict = det.detect(scenes[1], score_threshold=0.0, iou_threshold=0.1)
    assert 0 < len(strict) < len(everything)
    for c in set(strict.classes.tolist()):               # no same-class pair overlaps at IoU >= 0.1 any more
        b = strict.boxes[strict.classes == c]
        iou = box_iou(b, b) - np.eye(len(b))
        assert (iou < 0.1).all()
    top3 = det.detect(scenes[1], score_threshold=0.0, max_detections=3)
    np.testing.assert_array_equal(top3.scores, np.sort(everything.scores)[::-1][:3])
    assert len(det.detect(scenes[1])) >= len(det.detect(scenes[1], score_threshold=0.6)) > 0
    assert det.score_threshold == DEFAULT_SCORE_THRESHOLD                   # per call: the Detector is unchanged


def test_filters_keep_the_highest_scoring_box_of_a_cluster():
    boxes = np.float32([[0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 10], [50, 50, 60, 60]])
    det = Detections(boxes, np.float32([0.5, 0.9, 0.8, 0.4]), np.int64([0, 0, 1, 0]))
    out = apply_filters(det, score=None, iou=0.3, max_det=None)
    assert out.scores.tolist() == pytest.approx([0.9, 0.8, 0.4])       # 0.5 overlaps 0.9 (same class)
    assert out.classes.tolist() == [0, 1, 0]


def test_asking_below_the_floor_warns_once(det, scenes, caplog):
    with caplog.at_level(logging.WARNING, logger="effdet_deploy"):
        low = det.detect(scenes[0], score_threshold=0.0005)
        det.detect(scenes[0], score_threshold=0.0005)
        det.detect(scenes[0], iou_threshold=0.9)
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2
    assert "below the file's NMS threshold 0.001" in warnings[0] and "above the file's NMS IoU 0.5" in warnings[1]
    np.testing.assert_array_equal(low.scores, det.detect(scenes[0], score_threshold=0.0).scores)


@pytest.mark.parametrize("kwargs, message", [
    (dict(score_threshold=1.5), "score threshold \\(--score-threshold, score_threshold\\) must be in \\[0, 1\\]"),
    (dict(iou_threshold=-0.1), "IoU threshold \\(--iou-threshold, iou_threshold\\) must be in \\[0, 1\\]"),
    (dict(max_detections=0), "max detections \\(--max-detections, max_detections\\) must be an integer >= 1"),
])
def test_range_checks(det, scenes, kwargs, message):
    with pytest.raises(DeployError, match=message):
        det.detect(scenes[0], **kwargs)
    with pytest.raises(DeployError, match=message):
        Detector("shapes_d0", **kwargs)


@needs_pycocotools
def test_eval_keeps_the_low_scores(tmp_path):
    """mAP needs the low-score detections: eval scores all the file keeps, not the display default."""
    annotations = write_dataset(tmp_path / "val", 6, seed=5, progress=False)
    results_path = tmp_path / "out" / "results.json"
    metrics = evaluate_files("shapes_d0", tmp_path / "val" / "images", annotations, results_path)
    scores = [r["score"] for r in json.loads(results_path.read_text())]
    assert min(scores) < 0.01 and len(scores) == 6 * 100
    coco = load_annotations(annotations)
    from runtime.image_io import read_image

    images = [read_image(tmp_path / "val" / "images" / im["file_name"]) for im in coco["images"]]
    with Detector("shapes_d0", score_threshold=0.0) as all_kept, Detector("shapes_d0") as default:
        assert metrics == evaluate_detector(all_kept.detect, images, coco)
        assert sum(len(d) for d in default.detect(images)) < len(scores)
