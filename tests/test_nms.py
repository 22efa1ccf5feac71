"""Semantics of the numpy reference (plugin and --nms onnx), one attribute at a time, on hand-made boxes,
and the fast implementation against the plugin's definition written out the slow way."""
import numpy as np
import pytest

from runtime.nms import NMSParams, efficient_nms, logit_threshold

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


def brute_force_plugin(boxes, logits, p):
    """The plugin's definition written the slow, obvious way: sigmoid everything, threshold, stable sort of
    all pairs, cut to top_k, greedy walk (IoU >= threshold, same class)."""
    from runtime.boxes import box_iou
    from runtime.nms import sigmoid

    probs = sigmoid(logits).reshape(-1)
    flat = np.flatnonzero(probs >= np.float32(p.score_threshold))
    flat = flat[flat % logits.shape[1] != p.background_class] if p.background_class >= 0 else flat
    order = flat[np.argsort(-probs[flat], kind="stable")][: p.top_k]
    anchors, classes = order // logits.shape[1], order % logits.shape[1]
    kept = []
    for i in range(len(order)):
        if len(kept) == p.max_output_boxes:
            break
        if all(classes[j] != classes[i] or box_iou(boxes[anchors[j]][None], boxes[anchors[i]][None])[0, 0]
               < np.float32(p.iou_threshold) for j in kept):
            kept.append(i)
    return len(kept), boxes[anchors[kept]], probs[order[kept]], classes[kept]


def test_fast_reference_equals_the_plugin_definition_with_ties_and_any_top_k():
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 200, (600, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(5, 60, (600, 2))], 1).astype(np.float32)
    logits = (np.round(rng.normal(-2, 2, (600, 5)) * 2) / 2).astype(np.float32)  # many exact ties
    for kw in (dict(top_k=4096), dict(top_k=37), dict(top_k=300, background_class=2, max_output_boxes=20),
               dict(top_k=4096, score_threshold=0.5)):
        p = NMSParams(iou_threshold=0.4, **kw)
        num, b, s, c = efficient_nms(boxes[None], logits[None], None, p)
        n, rb, rs, rc = brute_force_plugin(boxes, logits, p)
        assert num[0, 0] == n > 0, kw
        np.testing.assert_array_equal(b[0, :n], rb)
        np.testing.assert_array_equal(s[0, :n], rs)
        np.testing.assert_array_equal(c[0, :n], rc)


def test_onnx_semantics_iou_is_strict_and_threshold_on_logits():
    scores = np.float32([[[0.9], [0.8], [0.0], [0.0]]])
    iou = float(np.float32(9 / 11))
    assert run(scores, iou_threshold=iou)[0] == 1                       # plugin: IoU >= threshold suppresses
    assert run(scores, iou_threshold=iou, semantics="onnx")[0] == 2     # ONNX NonMaxSuppression: IoU > threshold
    logits = np.float32([[[2.0], [-3.0], [0.0], [-10.0]]])
    p = NMSParams(score_threshold=0.5, semantics="onnx")                # logit(0.5) = 0: 0.0 passes
    num, _, s, _ = efficient_nms(BOXES, logits, None, p)
    assert num[0, 0] == 2 and logit_threshold(0.5) == 0 and logit_threshold(0.0) == -np.inf
    np.testing.assert_allclose(s[0, :2], [1 / (1 + np.exp(-2.0)), 0.5], rtol=1e-6)


def test_onnx_semantics_orders_ties_as_the_two_stage_topk():
    """Pairs (anchor 0, class 1) and (anchor 1, class 1) tie at 1.0. The plugin takes the lower flat index
    (anchor 0) first; the graph's first TopK puts anchor 1 (best 2.0) first, so its row's pair wins."""
    boxes = np.float32([[[0, 0, 10, 10], [1, 0, 11, 10]]])             # IoU 0.82: the first kept suppresses
    scores = np.float32([[[0.0, 1.0], [2.0, 1.0]]])
    plugin = run(scores, boxes)
    onnx_route = run(scores, boxes, semantics="onnx")
    assert plugin[3].tolist() == onnx_route[3].tolist() == [0, 1]
    assert plugin[1][1].tolist() == [0, 0, 10, 10] and onnx_route[1][1].tolist() == [1, 0, 11, 10]


def test_top_k_cuts_before_nms_in_both_semantics():
    boxes = np.float32([[[i * 20, 0, i * 20 + 10, 10] for i in range(6)]])
    scores = [[[0.9 - 0.1 * i] for i in range(6)]]
    for semantics in ("plugin", "onnx"):
        assert run(scores, boxes, top_k=3, semantics=semantics)[0] == 3
    with pytest.raises(ValueError):
        run(scores, boxes, semantics="trt")
