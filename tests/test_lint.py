"""The TensorRT lint per target version, on small hand-made ONNX graphs (one node under test each)."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from export.lint import PARSER_RULES, lint, oldest_tensorrt_for_opset, rules_for, target_version

ROOT = Path(__file__).resolve().parents[1]


def graph_model(nodes, inputs, outputs, inits=(), opset=17, meta=None):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    if meta:
        helper.set_model_props(model, meta)
    return model


def vi(name, shape, dtype=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, dtype, shape)


def const(name, value):
    return numpy_helper.from_array(np.asarray(value), name)


def topk(k, sorted_=1, k_const=True):
    inits = [const("k", np.int64([k]))] if k_const else []
    nodes = [helper.make_node("TopK", ["x", "k" if k_const else "kk"], ["v", "i"], name="topk", axis=1,
                              sorted=sorted_)]
    inputs = [vi("x", [1, 8000])] + ([] if k_const else [vi("kk", [1], TensorProto.INT64)])
    return graph_model(nodes, inputs, [vi("v", [1, k]), vi("i", [1, k], TensorProto.INT64)], inits)


def test_rules_table_per_version():
    assert [rules_for(v).max_opset for v in ("8.6.1", "10.0", "10.3.0", "10.14", "10.15.1", "11.0", "11.1")] == \
        [17, 20, 20, 20, 24, 24, 24]
    assert rules_for("8.6").topk_max_k == 3840 and rules_for("10.13").topk_max_k == 3839
    assert all("onnx-tensorrt" in r.source or "11.x" in r.source for r in PARSER_RULES)
    with pytest.raises(ValueError, match="older than"):
        rules_for("8.5")
    with pytest.raises(ValueError, match="MAJOR.MINOR"):
        rules_for("ten")


def test_oldest_tensorrt_for_opset_is_the_first_row_that_parses_it():
    assert [oldest_tensorrt_for_opset(o) for o in (13, 17, 18, 20, 21, 24, 25, 26)] == \
        ["8.6", "8.6", "10.0", "10.0", "10.15", "10.15", "11.5", None]
    for opset in range(13, 25):   # the version named really takes the opset, and the row before it does not
        since = oldest_tensorrt_for_opset(opset)
        assert rules_for(since).max_opset >= opset
        older = [r for r in PARSER_RULES if r.since < rules_for(since).since]
        assert all(r.max_opset < opset for r in older)


def test_opset_ceiling_and_default_target_from_metadata():
    relu = ([helper.make_node("Relu", ["x"], ["y"])], [vi("x", [1, 4])], [vi("y", [1, 4])])
    assert lint(graph_model(*relu, opset=17)) == []
    assert "opset 18 is above TensorRT 8.6's parser range (<= 17" in lint(graph_model(*relu, opset=18))[0]
    assert lint(graph_model(*relu, opset=18, meta={"min_tensorrt": "10.0"})) == []          # the file's claim
    assert target_version(graph_model(*relu, meta={"min_tensorrt": "10.3"})) == "10.3"
    assert "opset 21" in lint(graph_model(*relu, opset=21), "10.3")[0]
    assert lint(graph_model(*relu, opset=21), "10.15") == []


def test_topk_sorted_and_k_limit():
    assert lint(topk(3839)) == [] and lint(topk(3839), "10.0") == []
    assert lint(topk(3840), "8.6") == []                                                      # 8.6: "up to 3840"
    assert "K=3840 exceeds TensorRT 10.0's limit" in lint(topk(3840), "10.0")[0]
    assert "sorted=0" in lint(topk(100, sorted_=0))[0]
    assert "K is not a constant" in lint(topk(100, k_const=False))[0]


def test_scatternd_reduction_and_resize_modes():
    scatter = graph_model([helper.make_node("ScatterND", ["d", "i", "u"], ["o"], name="sc", reduction="add")],
                          [vi("d", [4]), vi("i", [1, 1], TensorProto.INT64), vi("u", [1])], [vi("o", [4])], opset=17)
    assert "reduction='add'" in lint(scatter)[0]
    scatter.graph.node[0].ClearField("attribute")
    assert lint(scatter) == []
    scatter.graph.node[0].attribute.append(helper.make_attribute("reduction", "none"))
    assert lint(scatter, "8.6") == []                            # 8.6 ignores the attribute
    assert "has a reduction attribute (even 'none')" in lint(scatter, "10.13")[0]   # 10.x rejects it

    def resize(**attrs):
        return graph_model([helper.make_node("Resize", ["x", "", "s"], ["y"], name="rs", **attrs)],
                           [vi("x", [1, 1, 4, 4])], [vi("y", [1, 1, 8, 8])], [const("s", np.float32([1, 1, 2, 2]))],
                           opset=18, meta={"min_tensorrt": "10.0"})
    assert lint(resize(mode="nearest")) == []
    assert "mode='cubic'" in lint(resize(mode="cubic"))[0]
    assert "antialias=1" in lint(resize(mode="linear", antialias=1))[0]
    assert "coordinate_transformation_mode='tf_crop_and_resize'" in \
        lint(resize(coordinate_transformation_mode="tf_crop_and_resize"))[0]


def test_pooling_and_resize_combinations_tensorrt_computes_differently():
    """MaxPool dilations (10.x ignores them), ceil_mode=1 (TensorRT's round-up keeps a window ONNX Runtime
    drops), Resize tf_half_pixel_for_nn with a nearest_mode TensorRT does not follow."""
    def pool(**attrs):
        return graph_model([helper.make_node("MaxPool", ["x"], ["y"], name="mp", kernel_shape=[3, 3], strides=[2, 2],
                                             **attrs)], [vi("x", [1, 1, 8, 8])], [vi("y", [1, 1, 4, 4])], opset=17)
    assert lint(pool(pads=[0, 0, 1, 1])) == []
    assert "dilations [2, 2]" in lint(pool(dilations=[2, 2]))[0]
    assert "ceil_mode=1" in lint(pool(ceil_mode=1))[0]

    def resize(**attrs):
        return graph_model([helper.make_node("Resize", ["x", "", "s"], ["y"], name="rs", mode="nearest", **attrs)],
                           [vi("x", [1, 1, 4, 4])], [vi("y", [1, 1, 8, 8])], [const("s", np.float32([1, 1, 2, 2]))],
                           opset=17)
    assert lint(resize(coordinate_transformation_mode="tf_half_pixel_for_nn")) == []
    for version in ("8.6", "10.13"):
        assert any("tf_half_pixel_for_nn with nearest_mode='floor'" in p for p in lint(
            resize(coordinate_transformation_mode="tf_half_pixel_for_nn", nearest_mode="floor"), version))


def test_reduce_axes_input():
    def reduce(op, axes_const=True):
        inputs = [vi("x", [2, 3])] + ([] if axes_const else [vi("a", [1], TensorProto.INT64)])
        inits = [const("a", np.int64([1]))] if axes_const else []
        return graph_model([helper.make_node(op, ["x", "a"], ["y"], name="r", keepdims=0)], inputs, [vi("y", [2])],
                           inits, opset=18)
    # 8.6's importer reads an axes input for ReduceSum only: ReduceMean would reduce over all axes silently
    problems = lint(reduce("ReduceMean"), "8.6")
    assert any("ignores it and reduces over all axes" in p for p in problems)
    assert not any("axes" in p for p in lint(reduce("ReduceSum"), "8.6"))
    assert lint(reduce("ReduceMean"), "10.0") == []
    assert "axes must be a constant" in lint(reduce("ReduceMax", axes_const=False), "10.0")[0]


def test_qdq_zero_points():
    def qdq(zero):
        nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], name="q"),
                 helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], name="dq")]
        return graph_model(nodes, [vi("x", [4])], [vi("y", [4])],
                           [const("s", np.float32(0.1)), const("z", np.int8(zero))])
    assert lint(qdq(0)) == []
    problems = lint(qdq(3))
    assert len(problems) == 2 and all("zero point must be a constant 0" in p for p in problems)


def test_qdq_scales_and_inputs_as_tensorrt_reads_them():
    def qdq(scale=np.float32(0.1), zero=np.int8(0), with_zero=True):
        inputs = ["s", "z"] if with_zero else ["s"]
        nodes = [helper.make_node("QuantizeLinear", ["x", *inputs], ["q"], name="q"),
                 helper.make_node("DequantizeLinear", ["q", *inputs], ["y"], name="dq")]
        consts = [const("s", scale)] + ([const("z", zero)] if with_zero else [])
        return graph_model(nodes, [vi("x", [4])], [vi("y", [4])], consts)
    assert all("scale must be finite and > 0" in p for p in lint(qdq(scale=np.float32(0))))
    assert all("scale must be finite and > 0" in p for p in lint(qdq(scale=np.float32(np.inf))))
    assert all("without a zero point" in p for p in lint(qdq(with_zero=False), "8.6"))
    assert lint(qdq(with_zero=False), "10.13") == []                      # 10.x defaults it
    assert all("zero point is UINT8" in p for p in lint(qdq(zero=np.uint8(0))))
    fp16_scale = qdq(scale=np.float16(0.1))
    assert any("scale is FLOAT16" in p for p in lint(fp16_scale, "8.6"))



def test_per_channel_qdq_only_on_weights():
    """Per-channel Q/DQ only for inputs rooted at a constant (NvInfer.h IDequantizeLayer, 8.6-11.x)."""
    def qdq(weights):
        nodes = [helper.make_node("QuantizeLinear", ["w" if weights else "x", "s", "z"], ["q"], name="q", axis=0),
                 helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], name="dq", axis=0)]
        consts = [const("s", np.float32([0.1, 0.2])), const("z", np.int8([0, 0]))]
        consts += [const("w", np.ones((2, 3), np.float32))] if weights else []
        return graph_model(nodes, [] if weights else [vi("x", [2, 3])], [vi("y", [2, 3])], consts)
    assert lint(qdq(weights=True)) == []
    problems = lint(qdq(weights=False))
    assert len(problems) == 2 and all("per-channel" in p and "computed at run time" in p for p in problems)


def nms(boxes, dynamic=False):
    n = "n" if dynamic else boxes
    return graph_model(
        [helper.make_node("NonMaxSuppression", ["b", "s", "k"], ["sel"], name="nms")],
        [vi("b", [1, n, 4]), vi("s", [1, 2, n])], [vi("sel", [None, 3], TensorProto.INT64)],
        [const("k", np.int64([100]))])


def test_nms_box_count_against_inms_limit():
    assert lint(nms(2000)) == [] and lint(nms(5000)) == []
    assert "NonMaxSuppression on 6000 boxes; TensorRT's INMSLayer keeps only the top 5000" in lint(nms(6000))[0]
    assert "box count is not static" in lint(nms(0, dynamic=True))[0]


def test_gelu_is_not_in_86():
    model = graph_model([helper.make_node("Gelu", ["x"], ["y"], name="g")], [vi("x", [4])], [vi("y", [4])], opset=20)
    assert any("Gelu" in p and "TensorRT 8.6" in p for p in lint(model, "8.6"))
    assert lint(model, "10.0") == []


def test_cli_target_version_and_exit_codes(tmp_path):
    path = tmp_path / "t.onnx"
    onnx.save(topk(3840), path)

    def run(*args):
        return subprocess.run([sys.executable, "-m", "export.lint", str(path), *args], cwd=ROOT,
                              capture_output=True, text=True, timeout=120)
    ok, bad, wrong = run("--trt-version", "8.6"), run("--trt-version", "10.3"), run("--trt-version", "7.2")
    assert ok.returncode == 0 and "TensorRT 8.6: OK" in ok.stdout
    assert bad.returncode == 1 and "K=3840 exceeds TensorRT 10.3's limit" in bad.stdout
    assert wrong.returncode == 2 and wrong.stderr.count("\n") == 1 and "older than" in wrong.stderr


def test_cast_to_float64_is_named():
    model = graph_model([helper.make_node("Cast", ["x"], ["y"], name="c", to=TensorProto.DOUBLE)], [vi("x", [2])],
                        [vi("y", [2], TensorProto.DOUBLE)])
    assert lint(model) == ["node 'c' (Cast): casts to float64", "tensor 'y': dtype float64 not supported"]


def reduce_sum(dtype, opset=17):
    return graph_model([helper.make_node("ReduceSum", ["x", "a"], ["y"], name="rs", keepdims=1)],
                       [vi("x", [1, 8], dtype)], [vi("y", [1, 1], dtype)], [const("a", np.int64([1]))], opset=opset)


def test_op_dtypes_per_parser_version():
    """onnx-tensorrt 8.6-GA docs/operators.md lists ReduceSum for FP32/FP16 only; 10.x adds INT32/INT64."""
    problems = lint(reduce_sum(TensorProto.INT32), "8.6")
    assert len(problems) == 1 and "INT32 is not among TensorRT 8.6's supported types for ReduceSum" in problems[0]
    assert "release/8.6-GA docs/operators.md" in problems[0]
    assert lint(reduce_sum(TensorProto.FLOAT), "8.6") == [] and lint(reduce_sum(TensorProto.INT32), "10.0") == []
    div = graph_model([helper.make_node("Div", ["a", "b"], ["c"], name="d")],          # 8.6 casts INT64 to INT32
                      [vi("a", [2], TensorProto.INT64), vi("b", [2], TensorProto.INT64)],
                      [vi("c", [2], TensorProto.INT64)])
    assert lint(div, "8.6") == []
    fill = graph_model([helper.make_node("ConstantOfShape", ["s"], ["y"], name="fill",
                                         value=numpy_helper.from_array(np.float16([1])))],
                       [], [vi("y", [2], TensorProto.FLOAT16)], [const("s", np.int64([2]))])
    assert "FP16 is not among TensorRT 10.0's supported types for ConstantOfShape" in lint(fill, "10.0")[0]
    assert lint(fill, "10.15") == []                                    # 10.1-GA's table adds FP16
    assert all("operators.md" in r.op_dtypes.source for r in PARSER_RULES)


def qdq_conv(between=(), op="Conv", axis=0, scale=np.float32, opset=17, cast_before_q=False, meta=None):
    """x -> [Cast] -> Q -> DQ -> [between...] -> Conv, weights -> Q -> DQ(axis, per channel) -> Conv (all FP32
    unless `scale` is float16, then x, weights and scales are FP16: ModelOpt's opset-19 form)."""
    elem, fdt = (TensorProto.FLOAT16, np.float16) if scale == np.float16 else (TensorProto.FLOAT, np.float32)
    w_shape = [3, 2, 1, 1] if op == "Conv" else [2, 3, 1, 1]           # Conv [K,C,R,S]; ConvTranspose [C,K,R,S]
    channels = w_shape[axis] if axis is not None else 3
    nodes = [helper.make_node("Cast", ["x0"], ["x"], name="cast_in", to=elem)] if cast_before_q else []
    nodes += [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"], name="q"),
              helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["t0"], name="dq")]
    for i, kind in enumerate(between):
        extra = {"to": elem} if kind == "Cast" else {}
        nodes.append(helper.make_node(kind, [f"t{i}"], [f"t{i + 1}"], name=f"mid{i}", **extra))
    axis_attr = {} if axis is None else {"axis": axis}
    nodes += [helper.make_node("QuantizeLinear", ["w", "ws", "wz"], ["wq"], name="wq", **axis_attr),
              helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"], name="wdq", **axis_attr),
              helper.make_node(op, [f"t{len(between)}", "wd"], ["y"], name="conv")]
    inits = [const("s", scale(0.1)), const("z", np.int8(0)), const("w", np.ones(w_shape, fdt)),
             const("ws", np.full(channels, 0.01, scale)), const("wz", np.zeros(channels, np.int8))]
    x_in = vi("x0" if cast_before_q else "x", [1, 2, 4, 4], TensorProto.FLOAT if cast_before_q else elem)
    return graph_model(nodes, [x_in], [vi("y", [1, 3, 4, 4], elem)], inits, opset=opset, meta=meta)


def test_dq_feeds_the_quantized_layer_directly():
    assert lint(qdq_conv()) == []
    for between in (("Cast",), ("Identity",), ("Cast", "Identity")):
        problems = lint(qdq_conv(between))
        assert len(problems) == 1, problems
        assert f"node 'dq' (DequantizeLinear) -> {' -> '.join(between)} -> Conv 'conv'" in problems[0]
        assert "for a DQ feeding the layer directly" in problems[0]


def test_no_cast_next_to_a_qdq():
    problems = lint(qdq_conv(cast_before_q=True))
    assert len(problems) == 1 and "node 'cast_in' (Cast) -> QuantizeLinear 'q': a Cast next to a Q/DQ" in problems[0]
    tail = qdq_conv()
    tail.graph.node.append(helper.make_node("Cast", ["y"], ["y16"], name="c_out", to=TensorProto.FLOAT16))
    tail.graph.node.insert(2, helper.make_node("Cast", ["t0"], ["t0h"], name="c_dq", to=TensorProto.FLOAT16))
    tail.graph.output.append(vi("t0h", [1, 2, 4, 4], TensorProto.FLOAT16))
    problems = lint(tail)                                        # DQ -> Cast to a graph output; Conv -> Cast is fine
    assert len(problems) == 1 and "node 'dq' (DequantizeLinear) -> Cast 'c_dq': a Cast next to a Q/DQ" in problems[0]


def test_conv_weights_per_output_channel():
    """Conv weights [K,C,R,S] on axis 0, ConvTranspose [C,K,R,S] on axis 1; no axis: ONNX reads 1, TensorRT 0."""
    assert lint(qdq_conv(axis=0)) == [] and lint(qdq_conv(op="ConvTranspose", axis=1)) == []
    for op, axis, want in (("Conv", 1, 0), ("ConvTranspose", 0, 1)):
        problems = lint(qdq_conv(op=op, axis=axis))
        assert len(problems) == 2 and all(f"on axis {axis}; TensorRT quantizes {op} weights per output channel, "
                                          f"axis {want}" in p for p in problems), problems
    problems = lint(qdq_conv(axis=None))
    assert any("'wdq' (DequantizeLinear): per-channel DequantizeLinear without an axis attribute" in p
               for p in problems)


def test_fp16_scales_need_opset_19_and_tensorrt_10():
    modelopt = qdq_conv(scale=np.float16, opset=19, meta={"min_tensorrt": "10.0"})    # ModelOpt's native INT8 form
    assert lint(modelopt) == [] and lint(modelopt, "10.3") == [] and lint(modelopt, "11.0") == []
    on_86 = lint(modelopt, "8.6")
    assert "opset 19 is above TensorRT 8.6's parser range (<= 17" in on_86[0]
    assert any("scale is FLOAT16; TensorRT 8.6's parser reads it as FLOAT" in p for p in on_86)
    early = lint(qdq_conv(scale=np.float16, opset=17), "10.0")
    assert early and all("scale is FLOAT16 at opset 17; non-FLOAT scales need opset >= 19" in p for p in early)


def test_lint_command_exit_codes_and_default_version(tmp_path):
    """effdet-deploy lint: 0 clean, 1 with one line per finding then a summary; the target is the file's
    min_tensorrt unless --trt-version says otherwise."""
    path = tmp_path / "q.onnx"
    onnx.save(qdq_conv(scale=np.float16, opset=19, meta={"min_tensorrt": "10.0"}), path)

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "effdet_deploy", "lint", str(path), *args], cwd=ROOT,
                              capture_output=True, text=True, timeout=120)
    clean, old = cli(), cli("--trt-version", "8.6")
    assert clean.returncode == 0 and clean.stdout.strip() == f"{path}: TensorRT 10.0: OK" and clean.stderr == ""
    lines = old.stdout.strip().splitlines()
    assert old.returncode == 1 and lines[-1] == f"{path}: TensorRT 8.6: {len(lines) - 1} problem(s)"
    assert len(lines) > 2 and all(line.startswith(f"{path}: node '") or "opset 19" in line for line in lines[:-1])
