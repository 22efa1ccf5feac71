"""runtime/onnx_session.py: on ONNX Runtime 1.24 the CPU session keeps swish as Sigmoid + Mul (NCHWc-friendly),
later versions keep their QuickGelu fusion, and neither changes a result.

ONNX Runtime ignores an unknown name in disabled_optimizers without a word, so the first test is what notices
when a release renames QuickGeluFusion and the 13% CPU speed-up silently goes away."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from runtime.onnx_session import CPU_ONLY_DISABLED_OPTIMIZERS, ORT_FATAL_ONLY, cpu_disabled_optimizers, create_session


def _swish_model() -> tuple[bytes, np.ndarray, np.ndarray]:
    """Conv -> swish -> Conv (the pattern of every EfficientNet block), with its weights."""
    rng = np.random.default_rng(0)
    w1 = rng.standard_normal((8, 3, 3, 3)).astype(np.float32)
    w2 = rng.standard_normal((4, 8, 1, 1)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Sigmoid", ["c"], ["s"]), helper.make_node("Mul", ["c", "s"], ["m"]),
             helper.make_node("Conv", ["m", "w2"], ["y"])]
    graph = helper.make_graph(nodes, "swish", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")])
    # ir_version: onnx 1.23 stamps IR 14 by default, which ONNX Runtime 1.31 cannot read (<= 13)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    return model.SerializeToString(), w1, w2


def _optimized_op_types(model: bytes, disabled: list[str], path: str) -> set[str]:
    options = ort.SessionOptions()
    options.optimized_model_filepath = path
    ort.set_default_logger_severity(ORT_FATAL_ONLY)      # the "hardware specific optimizations" warning of the dump
    ort.InferenceSession(model, options, providers=["CPUExecutionProvider"], disabled_optimizers=disabled)
    return {n.op_type for n in onnx.load(path).graph.node}


def test_the_disabled_fusion_is_the_one_that_makes_quickgelu(tmp_path):
    model, _, _ = _swish_model()
    fused = _optimized_op_types(model, [], str(tmp_path / "default.onnx"))
    kept = _optimized_op_types(model, CPU_ONLY_DISABLED_OPTIMIZERS, str(tmp_path / "ours.onnx"))
    assert "QuickGelu" in fused                                 # control: ONNX Runtime fuses swish by default
    assert "QuickGelu" not in kept and {"Sigmoid", "Mul"} <= kept


def test_only_onnxruntime_1_24_and_older_get_the_fusion_switched_off():
    assert cpu_disabled_optimizers("1.24.4") == ["QuickGeluFusion"]
    assert cpu_disabled_optimizers("1.25.1") == [] and cpu_disabled_optimizers("1.31.1") == []
    assert cpu_disabled_optimizers("2.0.0") == []


def test_cpu_session_computes_the_same_swish_network(tmp_path):
    model, w1, w2 = _swish_model()
    x = np.random.default_rng(1).standard_normal((1, 3, 16, 16)).astype(np.float32)
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(2, 3))   # [1,3,16,16,3,3]
    c = np.einsum("bchwij,ocij->bohw", windows, w1)
    m = c / (1 + np.exp(-c))
    expected = np.einsum("bchw,oc->bohw", m, w2[:, :, 0, 0])
    got = create_session(model).run(None, {"x": x})[0]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_a_device_index_becomes_the_gpu_providers_device_id(monkeypatch):
    """'cuda:N' / 'tensorrt:N' (documented in --help) were refused for ONNX files; the index now goes to ONNX
    Runtime's CUDA/TensorRT provider option device_id. The GPU count and provider list are this machine's
    facts, set here; the mapping is the code under test."""
    import pytest

    from runtime.backends import onnxruntime_backend as backend
    from runtime.errors import DeployError

    monkeypatch.setattr(ort, "get_available_providers",
                        lambda: ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(backend, "cuda_device_count", lambda: 2)
    assert backend.pick_providers("cuda:1") == [("CUDAExecutionProvider", {"device_id": 1}), "CPUExecutionProvider"]
    assert backend.pick_providers("tensorrt:0")[:2] == [("TensorrtExecutionProvider", {"device_id": 0}),
                                                         ("CUDAExecutionProvider", {"device_id": 0})]
    assert backend.pick_providers("cuda") == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    for device, message in (("cuda:2", "has 2 CUDA device"), ("cpu:0", "is not one of"), ("cuda:x", "is not one of")):
        with pytest.raises(DeployError, match=message):
            backend.pick_providers(device)
    monkeypatch.setattr(backend, "cuda_device_count", lambda: 0)
    assert backend.pick_providers("cuda:1") == ["CPUExecutionProvider"]      # one warning, then CPU
