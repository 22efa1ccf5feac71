"""compare's small parts (issue 25), without a model: targets told apart by the shortest path suffix and their
output files kept apart, --atol/--rtol mapped onto every level's limits, n/a instead of vacuous numbers, --threads
only where a CPU library runs the file."""
from pathlib import Path

import numpy as np
import pytest

from effdet_deploy.reporting import cpu_options, distinct_labels, file_keys
from runtime.parity import TOLERANCES, Check, compare_detections, compare_raw, tolerances
from runtime.result import Detections


@pytest.mark.parametrize("paths, labels", [
    (["x/a/m.onnx", "x/b/m.onnx"], ["a/m.onnx", "b/m.onnx"]),
    (["x/a/m.onnx", "x/b/n.onnx"], ["m.onnx", "n.onnx"]),
    (["p/a/m.onnx", "q/a/m.onnx", "q/b/m.onnx"], ["p/a/m.onnx", "q/a/m.onnx", "b/m.onnx"]),
    (["a/m.onnx", "a/m.engine"], ["m.onnx", "m.engine"]),
])
def test_labels_are_the_shortest_distinguishing_suffix(tmp_path, paths, labels):
    full = [str(tmp_path / p) for p in paths]
    assert distinct_labels(full) == labels
    keys = file_keys(labels)
    assert len(set(keys)) == len(keys) and all("/" not in k for k in keys)


def test_file_keys_keep_the_common_names():
    assert file_keys(["m.fp16.onnx", "m.int8.onnx"]) == ["m.fp16", "m.int8"]        # worst_m.fp16.png as before
    assert file_keys(["a/m.onnx", "b/m.onnx"]) == ["a_m", "b_m"]
    assert file_keys(["m.onnx", "m.engine"]) == ["m.onnx", "m.engine"]
    assert file_keys(["a_b/m.onnx", "a/b_m.onnx"]) == ["a_b_m", "a_b_m_2"]        # last resort: a counter


def test_same_file_under_two_spellings_is_one_target(tmp_path, capsys):
    from effdet_deploy.commands.compare import unique_targets

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "m.onnx").write_bytes(b"x")
    spelled = [str(tmp_path / "a" / "m.onnx"), str(tmp_path / "a" / ".." / "a" / "m.onnx")]
    assert unique_targets(spelled) == spelled[:1]
    assert "compared once" in capsys.readouterr().out


def test_atol_and_rtol_set_every_levels_score_limits():
    limits = tolerances("int8", atol=0.05, rtol=0.2)
    assert limits["score_atol"] == limits["raw_score_atol"] == 0.05       # INT8 has neither by default
    assert limits["rtol"] == limits["raw_rtol"] == limits["layer_rel"] == 0.2
    assert limits["box_atol"] == TOLERANCES["int8"]["box_atol"] and limits["raw_box_mean"] == 4.0
    assert tolerances("fp16") == TOLERANCES["fp16"] and TOLERANCES["fp16"]["raw_rtol"] is None


def test_raw_level_obeys_atol_and_never_passes_on_nothing():
    rng = np.random.default_rng(2)
    boxes, scores = rng.uniform(0, 100, (40, 4)).astype(np.float32), rng.uniform(0, 1, (40, 3)).astype(np.float32)
    near = [((boxes, scores), (boxes, scores + np.float32(1e-6)))]
    assert compare_raw(near, tolerances("fp32"), (128, 128))
    strict = compare_raw(near, tolerances("fp32", atol=1e-9), (128, 128))
    assert not strict and strict.failures[0].startswith("raw max score error") and strict.failures[0].endswith("> 1e-09")
    assert "(<= 1e-09)" in strict.checks[0].text()
    empty = compare_raw([], tolerances("fp32"), (128, 128))
    assert not empty and all(c.value is None for c in empty.checks) and "no image" in empty.failures[-1]


def test_nothing_compared_is_na_not_one():
    none = Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))
    result = compare_detections("t", "fp32", [none, none], [none, none])
    checks = {c.label: c for c in result.checks}
    assert checks["F1"].value is None and checks["mean IoU"].value is None and checks["max score error"].value is None
    assert checks["F1"].text() == "F1 n/a (>= 0.99)" and not result.failures and result.verdict == "INCONCLUSIVE"
    data = result.to_json()
    assert data["f1"] is None and data["mean_iou"] is None and data["boxes"] is None and data["matched"] == 0
    one = Detections(np.array([[0, 0, 10, 10]], np.float32), np.array([0.9], np.float32), np.zeros(1, np.int64))
    lost = compare_detections("t", "fp32", [one], [none])            # evidence of a difference: F1 0, a FAIL
    assert lost.verdict == "FAIL" and lost.to_json()["f1"] == 0.0 and lost.to_json()["mean_iou"] is None


def test_check_texts():
    assert Check("box cosine", 0.99999994, 0.9999, False, ".7f").text() == "box cosine 0.9999999 (>= 0.9999)"
    assert Check("max score error", 4.2e-4, None).text() == "max score error 0.00042"
    assert Check("x", 2.0, 1.0).failed and not Check("x", None, 1.0).failed and not Check("x", 2.0, None).failed


def test_threads_only_for_cpu_libraries():
    assert cpu_options("m.onnx", 2) == {"threads": 2} and cpu_options("c.pth", 2) == {"threads": 2}
    assert cpu_options("m.engine", 2) == {} and cpu_options("m.onnx", None) == {}
    assert cpu_options(str(Path("x") / "m.plan"), 4) == {}


def test_images_of_the_same_name_in_two_subfolders_stay_two(tmp_path):
    from PIL import Image

    from effdet_deploy.commands.compare import compare_images

    for sub, value in (("a", 10), ("b", 200)):
        (tmp_path / sub).mkdir()
        Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(tmp_path / sub / "1.png")
    names, images, skipped = compare_images(str(tmp_path), 16)
    assert names == ["a/1.png", "b/1.png"] and skipped == []
    assert [int(i[0, 0, 0]) for i in images] == [10, 200]
