"""Opset 19 -> 17 rewrite (calibration/opset17.py) on small hand-made graphs, and the per-tensor range choice
(calibration/ranges.py) on known distributions. Fast: no model, no calibration."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from calibration.opset17 import to_opset17
from calibration.ranges import BINS, choose, percentile_of
from runtime.errors import DeployError


def model_of(nodes, inits, opset=19, shape=(1, 4, 3, 3)):
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", "c", "h", "w"])],
                              [numpy_helper.from_array(v, k) for k, v in inits.items()])
    # ir_version: onnx 1.23 stamps IR 14 by default, which ONNX Runtime 1.31 cannot read (<= 13)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=9)


def run(model, x):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]



def test_reduce_mean_axes_input_becomes_attribute_and_qdq_is_kept():
    """Squeeze-excite pooling: opset 18 takes axes as an input; TensorRT 8.6 would average over every axis."""
    inits = {"axes": np.array([2, 3], np.int64), "s": np.array(0.05, np.float32), "z": np.array(0, np.int8)}
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], saturate=1),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["d"]),
             helper.make_node("ReduceMean", ["d", "axes"], ["y"], keepdims=1)]
    model = model_of(nodes, inits)
    down = to_opset17(model)
    x = np.random.default_rng(0).normal(size=(1, 4, 3, 3)).astype(np.float32)
    reduce = [n for n in down.graph.node if n.op_type == "ReduceMean"][0]
    assert list(reduce.input) == ["d"] and helper.get_attribute_value(reduce.attribute[-1]) == [2, 3]
    assert down.opset_import[0].version == 17 and "axes" not in {t.name for t in down.graph.initializer}
    np.testing.assert_array_equal(run(model, x), run(down, x))
    assert run(down, x).shape == (1, 4, 1, 1)


def test_fp16_qdq_is_refused_not_wrapped_in_casts():
    """ModelOpt's FP16-math Q/DQ (FP16 scales, opset 19) has no opset-17 form TensorRT documents a fusion for
    (Cast -> Q -> DQ -> Cast): refused; the 8.6 INT8 form is calibration/qdq_forms.fp32_form."""
    graph = helper.make_graph(
        [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]), helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"])],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT16, [9])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT16, [9])],
        [numpy_helper.from_array(np.array(0.05, np.float16), "s"), numpy_helper.from_array(np.array(0, np.int8), "z")])
    with pytest.raises(DeployError, match="FP16 scale needs opset 19"):
        to_opset17(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)], ir_version=9))


def test_refuses_what_opset17_cannot_say():
    computed_scale = [helper.make_node("Abs", ["x"], ["s"]), helper.make_node("QuantizeLinear", ["x", "s"], ["y"])]
    with pytest.raises(DeployError, match="constant"):
        to_opset17(model_of(computed_scale, {}))
    antialias = [helper.make_node("Resize", ["x", "", "sc"], ["y"], mode="linear", antialias=1)]
    with pytest.raises(DeployError, match="antialias"):
        to_opset17(model_of(antialias, {"sc": np.array([1, 1, 2, 2], np.float32)}))
    with pytest.raises(DeployError, match="changed at opset 18"):
        to_opset17(model_of([helper.make_node("Split", ["x"], ["y"], axis=1, num_outputs=1)], {}))
    with pytest.raises(DeployError, match="does not exist at opset 17"):
        to_opset17(model_of([helper.make_node("Mish", ["x"], ["y"])], {}))
    reshape = model_of([helper.make_node("Reshape", ["x", "shape"], ["y"])], {"shape": np.array([1, 4, 9, 1], np.int64)})
    assert to_opset17(reshape).opset_import[0].version == 17    # opset 19 only added FP8 types to Reshape


def test_resize_defaults_dropped():
    nodes = [helper.make_node("Resize", ["x", "", "sc"], ["y"], mode="nearest", antialias=0,
                              keep_aspect_ratio_policy="stretch")]
    model = model_of(nodes, {"sc": np.array([1, 1, 2, 2], np.float32)})
    down = to_opset17(model)
    assert {a.name for a in down.graph.node[0].attribute} == {"mode"}
    x = np.arange(36, dtype=np.float32).reshape(1, 4, 3, 3)
    np.testing.assert_array_equal(run(model, x), run(down, x))


def test_range_choice_follows_the_distribution():
    """Uniform values: clipping hurts, a range at (or within 0.1% of) the max wins over entropy's 0.5.
    Rare huge outliers: clipping them is cheaper than coarse steps for everything else, so a low range wins."""
    uniform = np.full(BINS, 100.0)
    how, amax = choose(uniform, 1.0, entropy_amax=0.5)
    assert how in ("max", "percentile") and amax >= 0.999
    tail = np.zeros(BINS)
    tail[:BINS // 100] = 1e6
    tail[-1] = 1.0
    how, amax = choose(tail, 100.0, entropy_amax=1.0)
    assert how in ("entropy", "percentile") and amax < 5.0
    assert percentile_of(tail, 100.0) == pytest.approx(BINS // 100 * 100.0 / BINS, rel=0.05)


def test_quantize_writes_the_whole_file_at_opset17_whatever_the_export_opset(tmp_path):
    """Only the body went through to_opset17: an --nms onnx export at opset 18 kept its tail's ReduceMax with an
    axes input inside a file labelled opset 17 (rejected by the ONNX checker, ONNX Runtime and TensorRT 8.6)."""
    pytest.importorskip("modelopt.onnx")
    from calibration.artifacts import QuantizeSettings, quantize_onnx
    from export.lint import lint
    from export.onnx_export import export_onnx
    from export.settings import ExportSettings

    outputs = {}
    for opset in (17, 18):
        fp32 = export_onnx(ExportSettings(model="shapes_d0", output=tmp_path / f"o{opset}.onnx", image_size=(128, 128),
                                          nms="onnx", opset=opset))
        fp16 = quantize_onnx(QuantizeSettings(fp32, tmp_path / f"o{opset}.fp16.onnx"))
        model = onnx.load(str(fp16))
        onnx.checker.check_model(model)
        assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [17]
        assert lint(model, "8.6") == []
        x = np.random.default_rng(0).uniform(0, 255, (1, 3, 128, 128)).astype(np.float32)
        session = ort.InferenceSession(str(fp16), providers=["CPUExecutionProvider"])
        outputs[opset] = session.run(None, {session.get_inputs()[0].name: x})
    for a, b in zip(outputs[17], outputs[18]):
        np.testing.assert_array_equal(a, b)
