"""runtime/qdq_twin.py: ONNX Runtime's twin of an FP16 Q/DQ file is exact, and is used exactly where this ONNX
Runtime needs it (its CPU QuantizeLinear truncates FP16 input before 1.30)."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from runtime.qdq_twin import FP16_QDQ_FORM, file_needs_twin, ort_needs_twin, twin, twin_bytes

# x / 0.05 = 0.52, 24.68, -24.68, 1.48, 1.5 (a tie: half to even -> 2), 2.5 (-> 2), 3.5 (-> 4)
X = np.array([0.026, 1.234, -1.234, 0.074, 0.075, 0.125, 0.175], np.float16)
SCALE = np.float16(0.05)


def qdq_model() -> onnx.ModelProto:
    """FP16 in -> QuantizeLinear-19 (FP16 scale) -> DequantizeLinear -> FP16 out; the INT8 codes as an output too."""
    graph = helper.make_graph(
        [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], name="q"),
         helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], name="dq")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT16, [7])],
        [helper.make_tensor_value_info("q", TensorProto.INT8, [7]), helper.make_tensor_value_info("y", TensorProto.FLOAT16, [7])],
        [numpy_helper.from_array(np.array(SCALE), "s"), numpy_helper.from_array(np.array(0, np.int8), "z")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    model.ir_version = 9
    return model


def run(serialized: bytes) -> list[np.ndarray]:
    session = ort.InferenceSession(serialized, providers=["CPUExecutionProvider"])
    return session.run(None, {"x": X})


def test_twin_quantizes_as_the_onnx_spec_says():
    expected = np.rint(X.astype(np.float32) / np.float32(SCALE)).astype(np.int8)   # round half to even
    codes, dequantized = run(twin_bytes(qdq_model().SerializeToString()))
    np.testing.assert_array_equal(codes, expected)
    np.testing.assert_array_equal(dequantized, (expected.astype(np.float32) * np.float32(SCALE)).astype(np.float16))
    changed = twin(qdq_model())
    assert [n.op_type for n in changed.graph.node] == ["Max", "Cast", "QuantizeLinear", "DequantizeLinear"]
    dq = changed.graph.node[3]
    assert {t.name: t.data_type for t in changed.graph.initializer}[dq.input[1]] == TensorProto.FLOAT16   # DQ kept


def test_this_onnx_runtime_needs_the_twin_where_the_module_says():
    """Guards FP16_Q_ROUNDS_FROM against the installed ONNX Runtime: it truncates exactly when the module says so."""
    codes, _ = run(qdq_model().SerializeToString())
    expected = np.rint(X.astype(np.float32) / np.float32(SCALE)).astype(np.int8)
    truncated = np.trunc(X.astype(np.float32) / np.float32(SCALE)).astype(np.int8)
    if ort_needs_twin(ort.__version__):
        np.testing.assert_array_equal(codes, truncated)
        assert not np.array_equal(codes, expected)
    else:
        np.testing.assert_array_equal(codes, expected)


@pytest.mark.parametrize("version, needed", [("1.24.4", True), ("1.29.0", True), ("1.30.0", False),
                                             ("1.32.0", False), ("2.0.0", False)])
def test_twin_by_version_and_form(version, needed):
    assert ort_needs_twin(version) is needed
    assert file_needs_twin({"qdq_form": FP16_QDQ_FORM}, version) is needed
    assert not file_needs_twin({"qdq_form": "fp32-opset17"}, version) and not file_needs_twin({}, version)


def test_the_runtime_opens_an_fp16_qdq_file_through_its_twin(tmp_path):
    from runtime.onnx_session import create_session

    model = qdq_model()
    model.metadata_props.add(key="qdq_form", value=FP16_QDQ_FORM)
    path = tmp_path / "q.onnx"
    onnx.save(model, str(path))
    codes, _ = create_session(path).run(None, {"x": X})
    np.testing.assert_array_equal(codes, np.rint(X.astype(np.float32) / np.float32(SCALE)).astype(np.int8))
