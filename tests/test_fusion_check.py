"""gpu-check's INT8 fusion proof without TensorRT: the ONNX side (quantized convolutions, Casts next to Q/DQ) on a
hand-made graph, and the engine side on layer information written in IEngineInspector's documented JSON form
(fixtures/engine_layers_int8.json: the keys and format strings of TensorRT's trt-engine-explorer QAT examples)."""
import copy
import json
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from export.qdq_graph import file_qdq, qdq_adjacent_casts, quantized_convs
from tools.fusion_check import engine_layers, fusion, int8_conv_count, standalone_kind

FIXTURE = Path(__file__).parent / "fixtures" / "engine_layers_int8.json"


def _graph():
    """images -> Q/DQ -> conv_a (DQ weights) -> swish -> Q/DQ -> conv_b (DQ weights) -> conv_c (float weights);
    DQ -> cast_d -> conv_d (DQ weights): conv_d's data comes through a Cast, so it is not a quantized conv."""
    def q(name, x, out):
        return helper.make_node("QuantizeLinear", [x, "s", "z"], [out], name=name)

    def dq(name, x, out):
        return helper.make_node("DequantizeLinear", [x, "s", "z"], [out], name=name)
    nodes = [q("q_in", "images", "qi"), dq("dq_in", "qi", "xi"), dq("dq_wa", "wa", "wa_f"),
             helper.make_node("Conv", ["xi", "wa_f"], ["a"], name="conv_a"),
             helper.make_node("Sigmoid", ["a"], ["sa"], name="sig_a"), helper.make_node("Mul", ["a", "sa"], ["ma"], name="mul_a"),
             q("q_b", "ma", "qb"), dq("dq_b", "qb", "xb"), dq("dq_wb", "wb", "wb_f"),
             helper.make_node("Conv", ["xb", "wb_f"], ["b"], name="conv_b"),
             helper.make_node("Conv", ["b", "wc"], ["out"], name="conv_c"),
             helper.make_node("Cast", ["xb"], ["xd"], name="cast_d", to=TensorProto.FLOAT16),
             dq("dq_wd", "wd", "wd_f"), helper.make_node("Conv", ["xd", "wd_f"], ["out_d"], name="conv_d")]
    inits = [numpy_helper.from_array(np.array(0.1, np.float32), "s"), numpy_helper.from_array(np.array(0, np.int8), "z"),
             *[numpy_helper.from_array(np.ones((4, 4, 1, 1), np.int8), w) for w in ("wa", "wb", "wd")],
             numpy_helper.from_array(np.ones((4, 4, 1, 1), np.float32), "wc")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 4, 8, 8])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _layers(edit=None):
    data = json.loads(FIXTURE.read_text())
    if edit:
        edit(data["Layers"])
    return engine_layers(json.dumps(data))


def test_quantized_convolutions_read_both_inputs_from_a_dequantize():
    model = _graph()
    assert quantized_convs(model) == ["conv_a", "conv_b"]          # not conv_c (float weights), not conv_d (Cast)
    assert qdq_adjacent_casts(model) == {"cast_d"}
    qdq = file_qdq(model)
    assert qdq.quantize == {"q_in", "q_b"} and "dq_wd" in qdq.dequantize and qdq.convs >= {"conv_a", "conv_d"}


def test_a_fused_engine_passes_and_lists_its_entry_quantize():
    verdict = fusion(_layers(), file_qdq(_graph()))
    assert verdict and (verdict.int8_convs, verdict.quantized_convs, verdict.convs) == (2, 2, 3)
    assert verdict.standalone == (("Quantize", "q_in"),)              # the input's Q: listed, not a failure


def test_an_unfused_engine_fails_naming_its_standalone_layers():
    def unfuse(layers):
        conv_b = layers[2]
        conv_b["Inputs"][0]["Format/Datatype"] = "Channel major FP16 format where channel % 8 == 0"
        dq_b = copy.deepcopy(layers[0])
        dq_b.update(Name="dq_b", Inputs=[{"Name": "q_b_out", "Format/Datatype": "Thirty-two wide channel vectorized "
                                          "row major Int8 format"}],
                    Outputs=[{"Name": "xb", "Format/Datatype": "Channel major FP16 format where channel % 8 == 0"}])
        cast = copy.deepcopy(layers[4])
        cast.update(Name="cast_d", Origin="")
        layers += [dq_b, cast]
    verdict = fusion(_layers(unfuse), file_qdq(_graph()))
    assert not verdict and verdict.int8_convs == 1
    assert verdict.failures[0].startswith("1 of the file's 2 quantized convolutions run INT8")
    assert "1 standalone Dequantize layer(s) not fused into their consumer: dq_b" in verdict.failures
    assert "1 standalone Cast layer(s) next to a Q/DQ: cast_d" in verdict.failures


def test_standalone_layers_are_recognized_without_the_files_names():
    """By IEngineInspector's own fields: Origin QDQ and which side is Int8; a LayerType naming Cast."""
    qdq = file_qdq(_graph())
    layers = _layers(lambda ls: ls.__setitem__(0, {**ls[0], "Name": "QuantizeLinear_2"}))
    assert standalone_kind(layers[0], qdq) == "Quantize"
    flipped = _layers(lambda ls: ls.__setitem__(0, {**ls[0], "Name": "x", "Inputs": ls[0]["Outputs"],
                                                    "Outputs": ls[0]["Inputs"]}))
    assert standalone_kind(flipped[0], qdq) == "Dequantize"
    cast = _layers(lambda ls: ls.__setitem__(4, {**ls[4], "Name": "y", "LayerType": "Cast", "Origin": ""}))
    assert standalone_kind(cast[4], qdq) == "Cast" and standalone_kind(cast[3], qdq) is None


def test_horizontally_fused_convolutions_count_each_conv():
    """Two file convs in one engine layer ("conv_a + conv_b") are two INT8 convolutions, found by name."""
    qdq = file_qdq(_graph())
    merged = _layers(lambda ls: (ls[1].update(Name="conv_a + conv_b"), ls.pop(2)))
    assert int8_conv_count(merged, qdq) == 2


def test_engines_whose_layer_names_are_not_the_files_count_int8_layers():
    qdq = file_qdq(_graph())
    renamed = _layers(lambda ls: [layer.update(Name=f"__myl_{i}") for i, layer in enumerate(ls)])
    assert int8_conv_count(renamed, qdq) == 2


@pytest.mark.parametrize("text", ["", "not json", '{"Layers": ["conv_a", "conv_b"], "Bindings": []}', "[1, 2]"])
def test_layer_information_without_detail_has_no_layers(text):
    """Engines built without detailed profiling verbosity list names only: nothing to judge (the row says so)."""
    assert engine_layers(text) == []
