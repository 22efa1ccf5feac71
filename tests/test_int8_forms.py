"""The two INT8 forms of one calibration (calibration/qdq_forms.py): each is the form NVIDIA's tools emit for its
TensorRT (no Cast next to a Q/DQ, every quantized Conv reading a DQ directly), both carry the same scales and
INT8 weights, and their detections agree within the INT8 tolerance of runtime/parity.py.

Why not F1 >= 0.99 above score 0.05 (issue 22's wording): measured on 60 held-out scenes, the TensorRT >= 10.0
file itself agrees with itself run by two correct ONNX Runtimes (1.24.4 through its twin, 1.31.1 natively) at
F1 0.934 above 0.05 (0.980 above 0.3, 0.991 above 0.5); the two forms on 1.24.4: 0.944 / 0.973 / 0.994. An INT8
network amplifies a one-code flip anywhere, so any two implementations differ that much at low scores.
"""
import re

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from calibration.int8 import SENSITIVE_PATTERNS
from export.qdq_graph import qdq_adjacent_casts, quantized_convs
from quantize_helpers import HOLDOUT_SEED, shapes_files
from runtime.agreement import agreement
from runtime.detector import Detector
from runtime.parity import compare_detections
from effdet.synthetic import render

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return shapes_files(tmp_path_factory.mktemp("forms"))


def values(model):
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def qdq_inputs(model, which):
    """{node name: name of input `which`} of every Q/DQ node."""
    return {n.name: n.input[which] for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")}


def test_both_forms_are_what_tensorrt_fuses(files):
    convs = {}
    for label in ("int8", "int8-trt86"):
        model = onnx.load(str(files[label]))
        assert qdq_adjacent_casts(model) == set()
        convs[label] = quantized_convs(model)
        excluded = {n.name for n in model.graph.node if n.op_type == "Conv"      # the default exclusion
                    and (n.name.startswith("/model/box_net/") or any(re.search(p, n.name) for p in SENSITIVE_PATTERNS))}
        every_other = [n.name for n in model.graph.node if n.op_type == "Conv" and n.name not in excluded]
        print(f"{label}: {len(convs[label])} quantized convs read a DQ directly, 0 Casts next to a Q/DQ")
        assert sorted(convs[label]) == sorted(every_other)       # each conv outside the exclusions is INT8
    assert convs["int8"] == convs["int8-trt86"]
    fp16, fp32 = onnx.load(str(files["int8"])), onnx.load(str(files["int8-trt86"]))
    assert not [n for n in fp32.graph.node if n.op_type == "Cast"]          # plugin-NMS file: no Cast at all
    scales = {values(fp16)[s].dtype for s in qdq_inputs(fp16, 1).values()}
    assert scales == {np.dtype(np.float16)} and {values(fp32)[s].dtype for s in qdq_inputs(fp32, 1).values()} == {
        np.dtype(np.float32)}


def test_both_forms_come_from_one_calibration(files):
    """Same Q/DQ nodes, scale for scale equal (FP16 widened exactly), the same quantized weights and biases."""
    fp16, fp32 = onnx.load(str(files["int8"])), onnx.load(str(files["int8-trt86"]))
    a, b = values(fp16), values(fp32)
    scales_a, scales_b = qdq_inputs(fp16, 1), qdq_inputs(fp32, 1)
    assert scales_a.keys() == scales_b.keys() and len(scales_a) > 500
    for node, name in scales_a.items():
        assert np.array_equal(a[name].astype(np.float32), b[scales_b[node]]), node
    weights = {node: name for node, name in qdq_inputs(fp16, 0).items() if name in a}
    assert len(weights) == len(quantized_convs(fp16))
    for node, name in weights.items():
        w_a, w_b = a[name].astype(np.float32), b[qdq_inputs(fp32, 0)[node]]
        scale = a[scales_a[node]].astype(np.float32).reshape(-1, *[1] * (w_a.ndim - 1))
        assert np.array_equal(np.round(w_a / scale), np.round(w_b / scale)), node      # identical INT8 weights
    biases = [n.input[2] for n in fp16.graph.node if n.op_type == "Conv" and len(n.input) > 2]
    assert biases and all(np.array_equal(a[x].astype(np.float32), b[x]) for x in biases)


def test_the_two_forms_detect_alike(files):
    images = [render(HOLDOUT_SEED, i).image for i in range(16)]
    new, old = (Detector(files[k], score_threshold=0.0).detect(images) for k in ("int8", "int8-trt86"))
    verdict = compare_detections("int8", "int8", new, old)
    for threshold in (0.05, 0.3):
        found = agreement(new, old, threshold)
        print(f"two INT8 forms above {threshold}: F1 {found.f1:.3f} ({found.matched}/{found.reference}), "
              f"mean IoU {found.mean_iou:.3f}, mean score delta {found.mean_score_delta:.3f}")
    assert verdict.agreement.reference >= 30 and verdict, verdict.failures


def test_onnx_runtime_twin_quantizes_every_q_by_the_onnx_rule(files):
    """The preview of the TensorRT >= 10.0 form (runtime/qdq_twin.py on ONNX Runtime < 1.30): every Q node's INT8
    codes equal round-half-to-even(fp32(x) / fp32(scale)) of the FP16 tensor it reads, clipped to int8 (without the
    twin's Max barrier, 151 of 219 activation Q nodes were one code off at ties), and every DQ is int8 x scale
    rounded once to FP16."""
    from runtime.onnx_session import create_session
    from runtime.qdq_twin import twin

    model = onnx.load(str(files["int8"]))
    consts = values(model)
    qdq = [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    names = list(dict.fromkeys(t for n in qdq for t in (n.input[0], n.output[0]) if t not in consts))
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type.tensor_type.elem_type for v in inferred.graph.value_info}
    model.graph.output.extend(onnx.helper.make_tensor_value_info(t, types[t], None) for t in names)
    session = create_session(twin(model).SerializeToString(), source_name="twin probe")
    info = Detector(files["int8"]).info
    from runtime.letterbox import letterbox
    from runtime.preprocess import prepare_batch
    image = prepare_batch([letterbox(render(HOLDOUT_SEED, 0).image, info.image_size, info.mean)[0]], info)
    seen = dict(zip(names, session.run(names, {session.get_inputs()[0].name: image})))
    wrong = []
    for n in qdq:
        x, scale = seen.get(n.input[0], consts.get(n.input[0])), consts[n.input[1]].astype(np.float32)
        axis = next((a.i for a in n.attribute if a.name == "axis"), 1)
        if scale.size > 1:
            scale = scale.reshape([-1 if d == axis else 1 for d in range(x.ndim)])
        if n.op_type == "QuantizeLinear":
            want = np.clip(np.rint(x.astype(np.float32) / scale), -128, 127).astype(np.int8)
        else:
            want = (x.astype(np.float32) * scale).astype(consts[n.input[1]].dtype)
        if not np.array_equal(seen[n.output[0]], want):
            wrong.append(n.name)
    assert len(qdq) > 700 and wrong == []


def test_compare_raw_outputs_run_through_the_twin(files):
    """compare's raw level cuts the file before its tail in memory; that copy keeps the metadata, so the TensorRT
    >= 10.0 form runs through the ORT twin there too (without it: score cosine 0.73 against FP32, a FAIL in make demo)."""
    from effdet_deploy.raw_outputs import _onnx_runner
    from runtime.letterbox import letterbox
    from runtime.parity import TOLERANCES
    from runtime.preprocess import prepare_batch

    reference, target = _onnx_runner(files["fp32"]), _onnx_runner(files["int8"])
    info = reference.info
    for i in range(3):
        batch = prepare_batch([letterbox(render(HOLDOUT_SEED, i).image, info.image_size, info.mean)[0]], info)
        ref, got = reference.run_batch(batch)[1].ravel(), target.run_batch(batch)[1].ravel()
        cosine = float(ref @ got / (np.linalg.norm(ref) * np.linalg.norm(got)))
        assert cosine >= TOLERANCES["int8"]["raw_cosine"], cosine
