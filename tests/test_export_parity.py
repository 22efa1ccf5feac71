"""The exported files, run by ONNX Runtime on CPU, against the PyTorch reference (unfused model)."""
import numpy as np
import pytest

from effdet import create_model
from effdet.predict import detect_batch, raw_outputs
from export_helpers import export, match_detections, nchw, reference_checkpoint, sample_images
from runtime.nms import NMSParams
from runtime.onnx_session import create_session

# (model, export size): D0 non-square, Lite0 at its native 320 (P7 = 3), PyTorch-padded D0 at 200x328
CASES = [("tf_efficientdet_d0", (256, 320)), ("tf_efficientdet_lite0", (320, 320)), ("efficientdet_d0", (200, 328))]
THRESH = dict(score_threshold=0.55, iou_threshold=0.5, max_detections=50)


@pytest.fixture(scope="module", params=CASES, ids=[c[0] for c in CASES])
def exported(request, tmp_path_factory):
    name, size = request.param
    tmp = tmp_path_factory.mktemp(name)
    images = sample_images(size)
    ckpt = reference_checkpoint(name, tmp, separate_for=images)
    files = {nms: export(tmp, name, ckpt, image_size=size, nms=nms, batch=2, **THRESH) for nms in ("none", "onnx", "efficient")}
    model = create_model(name, checkpoint=ckpt)
    return name, model, files, images


def ort_run(path, images):
    return create_session(path).run(None, {"images": nchw(images)})


def test_nms_none_matches_pytorch(exported):
    name, model, files, images = exported
    boxes, scores = ort_run(files["none"], images)
    ref_boxes, ref_scores = raw_outputs(model, images)
    box_err, score_err = np.abs(boxes - ref_boxes).max(), np.abs(scores - ref_scores).max()
    print(f"{name} --nms none: max box error {box_err:.2e} px, max score error {score_err:.2e}")
    assert box_err <= 1e-2 and score_err <= 1e-4


@pytest.mark.parametrize("nms", ["efficient", "onnx"])
def test_nms_files_match_reference_postprocessing(exported, nms):
    name, model, files, images = exported
    got = ort_run(files[nms], images)
    ref = detect_batch(model, images, NMSParams(score_threshold=THRESH["score_threshold"], iou_threshold=0.5,
                                                max_output_boxes=THRESH["max_detections"]))
    for i in range(len(images)):
        m = match_detections(got, ref, i)
        print(f"{name} --nms {nms} image {i}: {m}")
        assert m["a"] == m["b"] == m["matched"] and m["a"] > 5
        assert m["worst_score"] <= 1e-4
    # sorted by score, padded with zeros
    n = int(got[0][0, 0])
    assert np.all(np.diff(got[2][0, :n]) <= 0) and not got[2][0, n:].any() and not got[1][0, n:].any()


def test_efficient_and_onnx_files_agree(exported):
    _, _, files, images = exported
    a, b = ort_run(files["efficient"], images), ort_run(files["onnx"], images)
    for i in range(len(images)):
        m = match_detections(a, b, i)
        assert m["a"] == m["b"] == m["matched"] and m["worst_score"] <= 1e-5
