"""Graph rewrites are exact: Pad(-inf) -> MaxPool folds into MaxPool pads with identical outputs;
anything else (a zero pad, a pad on channels) is left alone."""
import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from export.rewrite import fold_pads_into_pools


def pad_pool_model(value: float, pads: list[int]) -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("Pad", ["x", "pads", "value"], ["p"]),
         helper.make_node("MaxPool", ["p"], ["y"], kernel_shape=[3, 3], strides=[2, 2])],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 7, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.int64(pads), "pads"), numpy_helper.from_array(np.float32(value), "value")])
    # ir_version: onnx 1.23 stamps IR 14 by default, which ONNX Runtime 1.31 cannot read (<= 13)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def run(model, x):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


def test_minus_inf_pad_folds_exactly():
    x = np.random.default_rng(0).normal(size=(1, 2, 7, 8)).astype(np.float32) - 5   # all negative: pad value matters
    model = pad_pool_model(-np.inf, [0, 0, 0, 0, 0, 0, 1, 1])
    before = run(model, x)
    assert fold_pads_into_pools(model) == 1
    assert [n.op_type for n in model.graph.node] == ["MaxPool"]
    assert list(next(a for a in model.graph.node[0].attribute if a.name == "pads").ints) == [0, 0, 1, 1]
    assert not model.graph.initializer
    assert np.array_equal(run(model, x), before)


def test_other_pads_are_left_alone():
    for value, pads in ((0.0, [0, 0, 0, 0, 0, 0, 1, 1]), (-np.inf, [0, 1, 0, 0, 0, 0, 1, 1])):
        model = pad_pool_model(value, pads)
        assert fold_pads_into_pools(model) == 0 and len(model.graph.node) == 2


def test_pads_with_axes_or_ceil_mode_pools_are_left_alone():
    """Pad-18's axes input reorders the pads (folding them as NCHW would misplace them); with ceil_mode=1
    folding changes which windows start in padding."""
    model = pad_pool_model(-np.inf, [0, 0, 0, 0, 0, 0, 1, 1])
    model.graph.node[1].attribute.append(helper.make_attribute("ceil_mode", 1))
    assert fold_pads_into_pools(model) == 0
    model = pad_pool_model(-np.inf, [0, 1, 0, 1])
    model.graph.initializer.append(numpy_helper.from_array(np.int64([2, 3]), "axes"))
    model.graph.node[0].input.append("axes")
    model.opset_import[0].version = 18
    assert fold_pads_into_pools(model) == 0 and len(model.graph.node) == 2
