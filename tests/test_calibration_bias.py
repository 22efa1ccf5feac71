"""Bias correction (calibration/bias_correction.py) on a tiny two-conv Q/DQ network built here: only the bias
values change, and afterwards the Q/DQ network's conv outputs have the FP32 network's channel means.
Fast: no model, no ModelOpt."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from calibration.bias_correction import channel_means, correct_biases

RNG = np.random.default_rng(7)
W1, B1 = RNG.normal(0, 0.4, (4, 3, 3, 3)).astype(np.float32), RNG.normal(0, 0.1, 4).astype(np.float32)
W2, B2 = RNG.normal(0, 0.4, (5, 4, 1, 1)).astype(np.float32), RNG.normal(0, 0.1, 5).astype(np.float32)
STEP = 0.25   # coarse int8 steps so rounding shifts the means visibly


def _model(nodes, inits):
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y2", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(v, k) for k, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def fp32_body():
    return _model([helper.make_node("Conv", ["x", "w1", "b1"], ["y1"], pads=[1, 1, 1, 1]),
                   helper.make_node("Conv", ["y1", "w2", "b2"], ["y2"])], {"w1": W1, "b1": B1, "w2": W2, "b2": B2})


def qdq_body():
    """The same convs with inputs and weights through QuantizeLinear/DequantizeLinear at STEP."""
    nodes, inits = [], {"s": np.float32(STEP), "z": np.int8(0), "w1": W1, "w2": W2,
                        "b1": B1.copy(), "b2": B2.copy()}
    for x in ("x", "w1", "y1", "w2"):
        nodes += [helper.make_node("QuantizeLinear", [x, "s", "z"], [f"{x}_q"]),
                  helper.make_node("DequantizeLinear", [f"{x}_q", "s", "z"], [f"{x}_dq"])]
    nodes.insert(4, helper.make_node("Conv", ["x_dq", "w1_dq", "b1"], ["y1"], pads=[1, 1, 1, 1]))
    nodes.append(helper.make_node("Conv", ["y1_dq", "w2_dq", "b2"], ["y2"]))
    return _model(nodes, inits)


@pytest.fixture(scope="module")
def data():
    return (RNG.uniform(0.0, 2.0, (16, 3, 8, 8)) + 0.5).astype(np.float32)


def test_corrected_conv_means_match_fp32(data):
    body, quantized = fp32_body(), qdq_body()
    target = channel_means(body, ["y1", "y2"], data)
    before = channel_means(quantized, ["y1", "y2"], data)
    shift_before = max(float(np.abs(target[n] - before[n]).max()) for n in target)
    corrected, report = correct_biases(quantized, body, data, rounds=2)
    after = channel_means(corrected, ["y1", "y2"], data)
    shift_after = max(float(np.abs(target[n] - after[n]).max()) for n in target)
    print(f"largest channel-mean shift {shift_before:.4f} -> {shift_after:.4f}; {report.line()}")
    assert report.convs == 2 and shift_before > 0.05 and shift_after < shift_before / 10


def test_only_bias_values_change(data):
    quantized = qdq_body()
    before = onnx.ModelProto()
    before.CopyFrom(quantized)
    corrected, _ = correct_biases(quantized, fp32_body(), data)
    assert [n.SerializeToString() for n in corrected.graph.node] == [n.SerializeToString() for n in before.graph.node]
    old = {t.name: numpy_helper.to_array(t) for t in before.graph.initializer}
    new = {t.name: numpy_helper.to_array(t) for t in corrected.graph.initializer}
    assert old.keys() == new.keys()
    changed = {k for k in old if not np.array_equal(old[k], new[k])}
    assert changed == {"b1", "b2"} and all(new[k].dtype == old[k].dtype for k in old)
