"""calibration/qdq_forms.py on small hand-made graphs (fast): the TensorRT 8.6 form drops exactly the Casts that no
longer change a type, keeps graph outputs produced under their names, and picks forms by TensorRT version."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

from calibration.qdq_forms import FP16_FORM, FP32_FORM, form_for, fp32_form
from runtime.errors import DeployError

vi = h.make_tensor_value_info
X = vi("x", T.FLOAT, [2])


def converted(nodes, inputs, outputs, inits=()):
    model = h.make_model(h.make_graph(nodes, "g", inputs, outputs, list(inits)),
                         opset_imports=[h.make_opsetid("", 19)], ir_version=9)
    out = fp32_form(model)
    onnx.checker.check_model(out, full_check=True)
    produced = {o for n in out.graph.node for o in n.output} | {t.name for t in out.graph.initializer}
    assert all(o.name in produced | {i.name for i in out.graph.input} for o in out.graph.output)
    return [(n.op_type, list(n.input), list(n.output)) for n in out.graph.node]


def fp16_relu(*tail):
    return [h.make_node("Cast", ["x"], ["h"], to=T.FLOAT16), h.make_node("Relu", ["h"], ["r"]), *tail]


def test_identity_casts_dropped_outputs_keep_their_names():
    assert converted(fp16_relu(h.make_node("Cast", ["r"], ["o"], to=T.FLOAT)), [X], [vi("o", T.FLOAT, [2])]) == [
        ("Relu", ["x"], ["o"])]
    two = converted(fp16_relu(h.make_node("Cast", ["r"], ["o1"], to=T.FLOAT), h.make_node("Cast", ["r"], ["o2"], to=T.FLOAT)),
                    [X], [vi("o1", T.FLOAT, [2]), vi("o2", T.FLOAT, [2])])
    assert two == [("Relu", ["x"], ["o1"]), ("Cast", ["o1"], ["o2"])]       # the second output keeps a Cast
    both = converted(fp16_relu(h.make_node("Cast", ["r"], ["o1"], to=T.FLOAT)), [X],
                     [vi("r", T.FLOAT16, [2]), vi("o1", T.FLOAT, [2])])
    assert both == [("Relu", ["x"], ["r"]), ("Cast", ["r"], ["o1"])]


def test_type_changing_casts_and_constants():
    u8 = converted([h.make_node("Cast", ["u"], ["a"], to=T.FLOAT16), h.make_node("Mul", ["a", "k"], ["m"]),
                    h.make_node("Cast", ["m"], ["o"], to=T.FLOAT)], [vi("u", T.UINT8, [2])], [vi("o", T.FLOAT, [2])],
                   [nh.from_array(np.ones(2, np.float16), "k")])
    assert u8 == [("Cast", ["u"], ["a"]), ("Mul", ["a", "k"], ["o"])]        # uint8 -> float stays
    to_int = converted([h.make_node("Cast", ["x"], ["a"], to=T.FLOAT16), h.make_node("Cast", ["a"], ["i"], to=T.INT32)],
                       [X], [vi("i", T.INT32, [2])])
    assert to_int == [("Cast", ["x"], ["i"])]
    init = converted([h.make_node("Cast", ["w"], ["o"], to=T.FLOAT)], [X], [vi("o", T.FLOAT, [2])],
                     [nh.from_array(np.ones(2, np.float16), "w")])
    assert init == [("Cast", ["w"], ["o"])]                                  # an initializer keeps its name


def test_form_for_versions():
    assert form_for("8.6") is FP32_FORM and form_for("8.6.1.6") is FP32_FORM
    assert form_for("10.0") is FP16_FORM and form_for("10.3") is FP16_FORM and form_for("11.1") is FP16_FORM
    assert FP16_FORM.opset_for(17) == 19 and FP16_FORM.opset_for(20) == 20 and FP32_FORM.opset_for(20) == 17
    for bad in ("7.1", "9.0", "ten"):
        with pytest.raises(DeployError, match="--trt-version"):
            form_for(bad)
