"""EfficientNMS_TRT semantics of the numpy reference, one attribute at a time, on hand-made boxes."""
import numpy as np

from runtime.nms import NMSParams, efficient_nms

BOXES = np.float32([[[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30], [0, 0, 10, 10]]])


def run(scores, boxes=BOXES, anchors=None, **kw):
    p = NMSParams(**{"score_activation": False, "score_threshold": 0.1, **kw})
    num, b, s, c = efficient_nms(boxes, np.float32(scores), anchors, p)
    n = int(num[0, 0])
    assert (s[0, n:] == 0).all() and (b[0, n:] == 0).all() and (c[0, n:] == 0).all()  # zero padding
    return n, b[0, :n], s[0, :n], c[0, :n]


def test_per_class_nms_and_sorting():
    # box0/box1 IoU = 9/11 = 0.818; box3 duplicates box0 but in class 1
    scores = [[[0.9, 0.0], [0.8, 0.0], [0.7, 0.0], [0.0, 0.6]]]
    n, b, s, c = run(scores, iou_threshold=0.5)
    assert n == 3 and s.tolist() == [np.float32(0.9), np.float32(0.7), np.float32(0.6)]
    assert c.tolist() == [0, 0, 1] and b[2].tolist() == [0, 0, 10, 10]


def test_class_agnostic_suppresses_across_classes():
    scores = [[[0.9, 0.0], [0.0, 0.0], [0.0, 0.7], [0.0, 0.6]]]
    assert run(scores, class_agnostic=True)[0] == 2
    assert run(scores, class_agnostic=False)[0] == 3


def test_iou_threshold_is_inclusive():
    scores = [[[0.9], [0.8], [0.0], [0.0]]]
    iou = 9 / 11
    assert run(scores, iou_threshold=np.float32(iou) + 1e-6)[0] == 2
    assert run(scores, iou_threshold=float(np.float32(iou)))[0] == 1  # IoU >= threshold suppresses


def test_score_threshold_is_inclusive_and_background_skipped():
    scores = [[[0.5, 0.9], [0.0, 0.0], [0.2, 0.0], [0.0, 0.0]]]
    n, _, s, c = run(scores, score_threshold=0.2)
    assert n == 3 and c.tolist() == [1, 0, 0]
    n, _, _, c = run(scores, score_threshold=0.2, background_class=1)
    assert n == 2 and 1 not in c.tolist()


def test_max_output_boxes_and_top_k():
    boxes = np.float32([[[i * 20, 0, i * 20 + 10, 10] for i in range(6)]])
    scores = [[[0.9 - 0.1 * i] for i in range(6)]]
    n, _, s, _ = run(scores, boxes, max_output_boxes=4)
    assert n == 4 and np.allclose(s, [0.9, 0.8, 0.7, 0.6])
    n, _, s, _ = run(scores, boxes, top_k=2)
    assert n == 2


def test_score_activation_applies_sigmoid_to_threshold_and_output():
    logits = np.float32([[[2.0], [-3.0], [0.0], [-10.0]]])  # sigmoid: .881, .047, .5, ~0
    p = NMSParams(score_threshold=0.4, score_activation=True)
    num, _, s, _ = efficient_nms(BOXES, logits, None, p)
    assert num[0, 0] == 1 + 1  # box0 (0.881) and box2 (0.5); box1 below threshold
    np.testing.assert_allclose(s[0, :2], [1 / (1 + np.exp(-2.0)), 0.5], rtol=1e-6)


def test_fused_decoder_center_size_and_corner():
    anchors = np.float32([[[5, 5, 10, 10]]])  # center (5, 5), size (10, 10)
    raw = np.float32([[[0.1, -0.2, np.log(2.0), 0.0]]])
    n, b, _, _ = run([[[0.9]]], raw, anchors, box_coding=1)
    # center (5 + 0.1*10, 5 - 0.2*10) = (6, 3), size (20, 10)
    np.testing.assert_allclose(b[0], [-4, -2, 16, 8], rtol=1e-6)
    corner_anchor = np.float32([[[10, 10, 0, 0]]])  # swapped corners are reordered first
    n, b, _, _ = run([[[0.9]]], np.float32([[[1, 1, 2, 2]]]), corner_anchor, box_coding=0)
    np.testing.assert_allclose(b[0], [1, 1, 12, 12])


def test_batch_is_independent():
    boxes = np.concatenate([BOXES, BOXES])
    scores = np.float32([[[0.9], [0.8], [0.7], [0.0]], [[0.0], [0.0], [0.0], [0.0]]])
    num, _, _, _ = efficient_nms(boxes, scores, None, NMSParams(score_activation=False, score_threshold=0.1))
    assert num[:, 0].tolist() == [2, 0] and num.dtype == np.int32
