"""The `--nms onnx` tail: ONNX Runtime runs exactly what the numpy reference (semantics="onnx") computes, at
score threshold 0.001 with thousands of candidates; the graph stays inside TensorRT's limits; and it agrees
with the EfficientNMS_TRT route on the shipped shapes_d0 detector."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from calibration.graph_split import tail_node_names
from effdet.synthetic import render
from export.postprocess import OUTPUTS
from export_helpers import export, nchw, sample_images
from runtime.agreement import agreement
from runtime.nms import NMSParams, efficient_nms, logit_threshold
from runtime.onnx_session import create_session
from runtime.result import Detections

THRESH, K = 0.001, 2000
TOPK_LIMIT = 3840        # TensorRT's TopK takes K < 3840 (ITopKLayer docs); export/lint.py checks it too
INMS_LIMIT_SM53 = 2000   # INMSLayer keeps the top 2000 boxes per image on SM 5.3/6.2 (5000 elsewhere)
HEADS = ("cls_logits", "box_regression")


@pytest.fixture(scope="module")
def d0_90(tmp_path_factory):
    """Random-weight 90-class D0 at 128x128 (N = 3069 anchors, 276k pairs), dynamic batch, --nms onnx."""
    torch.manual_seed(0)
    tmp = tmp_path_factory.mktemp("onnx_nms")
    return export(tmp, "d0", None, image_size=128, nms="onnx", dynamic_batch=(1, 2, 4), score_threshold=THRESH)


def with_heads(path):
    """The exported file with its tail's inputs (the raw head outputs) as extra outputs."""
    proto = onnx.load(path)
    proto.graph.output.extend(onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None) for n in HEADS)
    return proto


def anchors_of(proto):
    init = {t.name: onnx.numpy_helper.to_array(t) for t in proto.graph.initializer}
    return np.concatenate([init["nms_anchor_center"], init["nms_anchor_size"]], 1)[None]


def reference(logits, regression, anchors, k=K, threshold=THRESH):
    params = NMSParams(score_threshold=threshold, iou_threshold=0.5, max_output_boxes=100, box_coding=1, top_k=k,
                       semantics="onnx")
    return efficient_nms(regression, logits, anchors, params)


def assert_identical(got, ref):
    """Same count and classes per image, same boxes and scores up to exp/sigmoid rounding."""
    np.testing.assert_array_equal(got[0], ref[0])
    np.testing.assert_array_equal(got[3], ref[3])
    np.testing.assert_allclose(got[1], ref[1], atol=1e-3, rtol=1e-5)
    np.testing.assert_allclose(got[2], ref[2], atol=1e-6)


@pytest.mark.parametrize("batch", [1, 3])
def test_ort_file_equals_reference_at_threshold_0_001(d0_90, batch):
    proto = with_heads(d0_90)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    *got, logits, regression = session.run(None, {"images": nchw(sample_images((128, 128), batch))})
    candidates = (logits >= logit_threshold(THRESH)).sum(axis=(1, 2))
    print(f"batch {batch}: {candidates.tolist()} (anchor, class) pairs above {THRESH}; detections {got[0].ravel()}")
    assert candidates.min() > 10 * K and got[0].min() > 50
    assert_identical(got, reference(logits, regression, anchors_of(proto)))


@pytest.fixture(scope="module")
def tail_session(d0_90, tmp_path_factory):
    """The exported file's tail alone (heads -> 4 outputs), cut out with onnx.utils.extract_model."""
    path = tmp_path_factory.mktemp("tail") / "tail.onnx"
    onnx.utils.extract_model(str(d0_90), str(path), list(HEADS), list(OUTPUTS))
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]), anchors_of(onnx.load(d0_90))


@pytest.mark.parametrize("case", ["ties", "few_pass", "none_pass"])
def test_tail_equals_reference_on_ties_and_edge_cases(tail_session, case):
    """Logits rounded to 0.25 (exact ties everywhere: the two-stage order decides), a threshold only a few
    hundred pairs pass (NMS input shorter than k), and none passing (all-zero outputs)."""
    session, anchors = tail_session
    rng = np.random.default_rng(1)
    n = anchors.shape[1]
    logits = rng.normal(-5.0, 1.5, (2, n, 90)).astype(np.float32)
    if case == "ties":
        logits = np.round(logits * 4) / 4
    threshold = {"ties": THRESH, "few_pass": 0.4, "none_pass": 0.9999}[case]
    shift = logit_threshold(threshold) - logit_threshold(THRESH)  # the file's threshold is fixed: move the logits
    regression = rng.normal(0, 0.5, (2, n, 4)).astype(np.float32)
    got = session.run(None, {"cls_logits": logits - shift, "box_regression": regression})
    ref = reference(logits - shift, regression, anchors)
    assert_identical(got, ref)
    if case == "none_pass":
        assert not got[0].any() and not got[1].any()


def test_graph_within_tensorrt_limits_and_sparse(d0_90):
    """Every TopK K < 3840, the NMS sees <= 2000 boxes per image, no tail tensor is dense over anchors x
    classes, the tail is what calibration/graph_split.py cuts off, metadata records k and min TensorRT."""
    proto = onnx.shape_inference.infer_shapes(onnx.load(d0_90))
    init = {t.name: onnx.numpy_helper.to_array(t) for t in proto.graph.initializer}
    topk = [int(init[n.input[1]].reshape(-1)[0]) for n in proto.graph.node if n.op_type == "TopK"]
    assert len(topk) == 3 and max(topk) == K < TOPK_LIMIT
    shapes = {v.name: [d.dim_value or d.dim_param for d in v.type.tensor_type.shape.dim] for v in proto.graph.value_info}
    nms = next(n for n in proto.graph.node if n.op_type == "NonMaxSuppression")
    assert shapes[nms.input[0]][1:] == [K, 4] and K <= INMS_LIMIT_SM53 and shapes[nms.input[1]][1:] == [90, K]
    n_anchors = 3069
    tail = tail_node_names(proto)
    tail_tensors = [o for n in proto.graph.node if n.name.startswith("nms_") for o in n.output]
    assert tail_tensors and all(n.name in tail for n in proto.graph.node if n.name.startswith("nms_"))
    views = {"nms_logits_in", "nms_reg_in"}   # the heads reshaped to static [-1, N, C] (no copy), not computed
    for name in set(tail_tensors) - views:
        dims = [d for d in shapes.get(name, []) if isinstance(d, int)]
        assert int(np.prod(dims)) <= K * 90, (name, shapes.get(name))          # at most k x C
        assert not (n_anchors in dims and 90 in dims) and n_anchors * 90 not in dims, (name, shapes.get(name))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["pre_nms_top_k"] == str(K) and meta["min_tensorrt"] == "8.6" and meta["nms"] == "onnx"


def test_onnx_and_plugin_routes_agree_on_shapes_d0(tmp_path):
    """The trained shapes_d0 detector on 12 rendered scenes: the --nms onnx file (k=2000, IoU >) and the
    EfficientNMS_TRT file (k=4096, IoU >=) give the same detections above 0.05."""
    images = np.stack([render(7, i).image for i in range(12)])
    results = {}
    for nms in ("onnx", "efficient"):
        session = create_session(export(tmp_path, "shapes_d0", None, nms=nms, batch=4, score_threshold=THRESH))
        outs = [session.run(None, {"images": nchw(images[i:i + 4])}) for i in range(0, len(images), 4)]
        num, boxes, scores, classes = (np.concatenate(o) for o in zip(*outs))
        results[nms] = [Detections.from_padded(int(num[i, 0]), boxes[i], scores[i], classes[i]) for i in range(len(images))]
    above = agreement(results["efficient"], results["onnx"], score_threshold=0.05)
    every = agreement(results["efficient"], results["onnx"], score_threshold=0.0)
    print(f"shapes_d0 onnx vs plugin: above 0.05 F1 {above.f1:.4f} ({above.matched}/{above.reference}), "
          f"all detections at {THRESH} F1 {every.f1:.4f} ({every.matched}/{every.reference}), "
          f"max score delta {above.max_score_delta:.2e}")
    assert above.reference > 30 and above.f1 >= 0.99 and above.max_score_delta <= 1e-5


def test_pre_nms_top_k_reaches_the_runtime(tmp_path):
    """--nms none: the k is the runtime's (numpy NMS through the Detector); files without the key read 4096."""
    from export.onnx_io import metadata_of
    from runtime.model_info import ModelInfo

    path = export(tmp_path, "d0", None, image_size=128, nms="none", num_classes=3, pre_nms_top_k=300)
    meta = metadata_of(onnx.load(path))
    assert ModelInfo.from_metadata(meta, str(path)).pre_nms_top_k == 300
    del meta["pre_nms_top_k"]
    assert ModelInfo.from_metadata(meta, str(path)).pre_nms_top_k == 4096
