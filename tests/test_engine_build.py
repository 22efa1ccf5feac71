"""Engine build and TensorRT runtime: the decisions made without TensorRT (shapes, precision mode,
engine/sidecar checks) are tested here; building and running engines needs TensorRT and a GPU and is
marked `tensorrt` (skipped with the reason otherwise)."""
import subprocess
import sys
from pathlib import Path

import pytest

from export.build_plan import (BuildSettings, build_precision, calibration_shape, check_min_tensorrt, check_pinnable,
                               check_version_compatible, conv_free_nodes, form_advice, fp32_node_count, onnx_input,
                               parse_shapes, pins_plausibly, pins_tail_only, profile_shapes)
from export.engine_build import precision_flags
from runtime.detector import Detector
from runtime.engine_sidecar import check_engine, read_sidecar, write_sidecar
from runtime.errors import DeployError
from runtime.trt_compat import PIN_FP32 as PIN
from runtime.trt_compat import network_flags, precision_builder_flags, tensorrt_available, wants_strong_typing
from trt_helpers import needs_trt

ROOT = Path(__file__).resolve().parents[1]


def settings(**kw):
    return BuildSettings(onnx=Path("m.onnx"), engine=Path("m.engine"), **kw)


def test_parse_shapes():
    assert parse_shapes("images:1x3x512x512") == {"images": (1, 3, 512, 512)}
    assert parse_shapes("a:1x2,b:3x4") == {"a": (1, 2), "b": (3, 4)}
    for bad in ("images:1xAx3", "1x3x4", "images:0x3"):
        with pytest.raises(DeployError):
            parse_shapes(bad)


def test_profile_shapes_from_flags_or_metadata():
    assert profile_shapes(settings(), "images", (1, 3, 64, 64), {}) is None
    meta = {"batch": "dynamic:1,4,8"}
    assert profile_shapes(settings(), "images", (-1, 3, 64, 64), meta) == ((1, 3, 64, 64), (4, 3, 64, 64), (8, 3, 64, 64))
    s = settings(min_shapes={"images": (1, 3, 64, 64)}, opt_shapes={"images": (2, 3, 64, 64)},
                 max_shapes={"images": (2, 3, 64, 64)})
    assert profile_shapes(s, "images", (-1, 3, 64, 64), meta)[1] == (2, 3, 64, 64)
    with pytest.raises(DeployError, match="--optShapes"):
        profile_shapes(settings(min_shapes={"images": (1, 3, 64, 64)}), "images", (-1, 3, 64, 64), meta)
    with pytest.raises(DeployError, match="minShapes"):
        profile_shapes(settings(), "images", (-1, 3, -1, -1), {})


def test_precision_flags_read_only_the_members_asked_for():
    """TensorRT 11's BuilderFlag has no FP16/INT8/PREFER_PRECISION_CONSTRAINTS: a build that asks for none
    must not touch them (reading all three up front broke every 11.x build)."""
    class Eleven:                      # 11.1's BuilderFlag lacks all three (pyCore.cpp v11.1)
        pass

    class Ten:                         # the three members 8.6-10.x have (values: NvInfer.h v10.13.0)
        FP16, INT8, PREFER_PRECISION_CONSTRAINTS = 0, 1, 10

    assert precision_flags(Eleven, []) == []
    assert precision_flags(Ten, ["FP16", "INT8", PIN]) == [0, 1, 10]
    with pytest.raises(AttributeError):
        precision_flags(Eleven, ["FP16"])


# TensorRT 11.1's Python BuilderFlag members (python/src/infer/pyCore.cpp v11.1): FP16, INT8, BF16, FP8, INT4,
# FP4, OBEY/PREFER_PRECISION_CONSTRAINTS and REJECT_EMPTY_ALGORITHMS are gone.
BUILDER_FLAGS_11 = {"DEBUG", "GPU_FALLBACK", "REFIT", "DISABLE_TIMING_CACHE", "EDITABLE_TIMING_CACHE", "TF32",
                    "SPARSE_WEIGHTS", "SAFETY_SCOPE", "DIRECT_IO", "VERSION_COMPATIBLE", "EXCLUDE_LEAN_RUNTIME",
                    "ERROR_ON_TIMING_CACHE_MISS", "DISABLE_COMPILATION_CACHE", "STRIP_PLAN", "REFIT_IDENTICAL",
                    "WEIGHT_STREAMING", "REFIT_INDIVIDUAL", "STRICT_NANS", "MONITOR_MEMORY",
                    "DISTRIBUTIVE_INDEPENDENCE"}


def test_builder_flags_read_directly_exist_on_tensorrt_11():
    """The type check runs against 10.13 stubs, so it cannot see 11.x removals: every `trt.BuilderFlag.X` read
    outside precision_flags (whose members are looked up only when a pre-11 build asks) must exist in 11.1."""
    import re

    for module in ("export/engine_build.py", "runtime/backends/tensorrt_backend.py", "calibration/legacy.py",
                   "tools/gpu_check.py"):
        direct = set(re.findall(r"trt\.BuilderFlag\.([A-Z0-9_]+)", (ROOT / module).read_text()))
        assert direct <= BUILDER_FLAGS_11, (module, direct - BUILDER_FLAGS_11)


def test_profile_shapes_are_checked_before_tensorrt_sees_them():
    """set_shape raises a bare RuntimeError on these (pyCore.cpp); flags for a static input were ignored."""
    dims = (-1, 3, 64, 64)

    def flags(lo, opt, hi):
        return settings(min_shapes={"images": lo}, opt_shapes={"images": opt}, max_shapes={"images": hi})
    for shapes, message in ((((4, 3, 64, 64), (2, 3, 64, 64), (8, 3, 64, 64)), "min <= opt <= max"),
                            (((1, 3, 64), (2, 3, 64, 64), (8, 3, 64, 64)), r"min shape \(1, 3, 64\) does not fit"),
                            (((1, 3, 64, 64), (2, 4, 64, 64), (8, 3, 64, 64)), r"opt shape \(2, 4, 64, 64\) does not fit")):
        with pytest.raises(DeployError, match=message):
            profile_shapes(flags(*shapes), "images", dims, {})
    static = (1, 3, 64, 64)
    assert profile_shapes(flags(static, static, static), "images", static, {}) is None
    with pytest.raises(DeployError, match="is static"):
        profile_shapes(flags(static, (2, 3, 64, 64), (4, 3, 64, 64)), "images", static, {})


@pytest.mark.parametrize("version, precision, qdq, flags, strong, legacy", [
    ("8.6.1", "fp32", False, {"fp16": True}, False, ["FP16"]),
    ("8.6.1", "fp16", False, {}, False, ["FP16", PIN]),      # FP16 file, weak typing: FP16 kernels need the flag,
    ("8.6.1", "fp16", False, {"fp16": True}, False, ["FP16", PIN]),   # and the file's FP32 layers are pinned
    ("8.6.1", "int8", True, {}, False, ["FP16", "INT8", PIN]),   # Q/DQ on 8.6 (JetPack 6): INT8 flag, no calibrator
    ("8.6.1", "int8", True, {"int8": True, "fp16": True}, False, ["FP16", "INT8", PIN]),   # trtexec --int8 --fp16
    ("10.0.1", "fp16", False, {}, True, []),                 # strong typing from 10.0 (NvInfer.h v10.0.0)
    ("10.3.0", "int8", True, {}, True, []),                  # JetPack 6.1/6.2
    ("10.8.0", "fp16", False, {}, True, []),
    ("10.3.0", "int8", True, {"int8": True, "strongly_typed": False}, False, ["FP16", "INT8", PIN]),   # asked for
    ("10.11.0", "fp32", True, {}, False, ["INT8"]),          # a foreign FP32 Q/DQ file
    ("10.3.0", "fp32", False, {"fp16": True}, False, ["FP16"]),   # FP32 files stay weakly typed before 11
    ("10.13.0.35", "fp16", False, {}, True, []),
    ("10.13.0.35", "int8", True, {}, True, []),
    ("10.13.0.35", "int8", True, {"strongly_typed": False}, False, ["FP16", "INT8", PIN]),
    ("8.6.1", "fp32", False, {"dla_core": 0}, False, ["FP16", PIN]),     # trtexec: DLA runs FP16/INT8, not FP32
    ("8.6.1", "fp16", False, {"dla_core": 1}, False, ["FP16", PIN]),
    ("10.3.0", "fp16", False, {"dla_core": 1}, True, []),
    ("10.3.0", "int8", True, {"dla_core": 0}, True, []),
    ("10.13.0.35", "fp16", False, {"dla_core": 0}, True, []),
    ("10.13.0.35", "fp32", False, {}, False, []),
    ("11.0.0", "fp32", False, {}, True, []),
    ("11.0.0", "int8", True, {}, True, []),
])
def test_precision_mode(version, precision, qdq, flags, strong, legacy):
    assert build_precision(settings(**flags), precision, version, qdq) == (strong, legacy)


def test_precision_mode_errors(tmp_path):
    with pytest.raises(DeployError, match="strongly typed"):
        build_precision(settings(fp16=True), "fp16", "10.13.0")
    with pytest.raises(DeployError, match=r"--fp16/--int8 are weak-typing flags; this build is strongly typed .*10.3.0"):
        build_precision(settings(fp16=True, int8=True), "int8", "10.3.0", True)   # the 8.6 command line on 10.3
    with pytest.raises(DeployError, match=r"--dla-core with a Q/DQ .* TensorRT 8.6.1 runs no explicit quantization on DLA"):
        build_precision(settings(dla_core=0), "int8", "8.6.1", True)
    with pytest.raises(DeployError, match="TensorRT 11.0.0 has no --fp16 builder flag .removed in 11.0."):
        build_precision(settings(fp16=True, strongly_typed=False), "fp32", "11.0.0")
    with pytest.raises(DeployError, match="--calib-cache"):
        build_precision(settings(int8=True), "fp32", "8.6.1")
    with pytest.raises(DeployError, match="give --calib-dir"):
        build_precision(settings(int8=True, calib_cache=tmp_path / "none.cache"), "fp32", "8.6.1")
    with pytest.raises(DeployError, match=r"already quantized \(Q/DQ\)"):
        build_precision(settings(int8=True, calib_cache=tmp_path / "c.cache"), "int8", "8.6.1", True)
    with pytest.raises(DeployError, match="no strongly typed networks"):
        build_precision(settings(strongly_typed=True), "fp16", "8.6.1")
    with pytest.raises(DeployError, match="strongly typed networks only .*drop --no-strongly-typed"):
        build_precision(settings(strongly_typed=False), "fp16", "11.1.0")   # 11 would build it strongly typed anyway
    with pytest.raises(DeployError, match="DLA runs FP16 and INT8 layers only"):
        build_precision(settings(dla_core=0), "fp32", "11.0.0")             # every layer would fall back to the GPU


def test_precision_builder_flags_per_version():
    assert precision_builder_flags("8.6.1", "int8", True) == ("FP16", PIN, "INT8")
    assert precision_builder_flags("10.11.0", "fp16", False) == ("FP16", PIN)
    assert precision_builder_flags("10.12.0", "fp32", False) == ()
    assert precision_builder_flags("11.1.0", "int8", True) == ()         # flags removed in 11


def test_calibration_shape_is_what_tensorrt_reads():
    static = (1, 3, 64, 64)
    assert calibration_shape(settings(), static, None) == static
    with pytest.raises(DeployError, match="static batch of 1"):      # 7 of 8 images would be skipped silently
        calibration_shape(settings(calib_batch=8), static, None)
    profile = ((1, 3, 64, 64), (4, 3, 64, 64), (8, 3, 64, 64))
    assert calibration_shape(settings(), (-1, 3, 64, 64), profile) == (4, 3, 64, 64)          # OPT
    assert calibration_shape(settings(calib_batch=8), (-1, 3, 64, 64), profile) == (8, 3, 64, 64)
    with pytest.raises(DeployError, match="outside the profile's batch 1..8"):
        calibration_shape(settings(calib_batch=16), (-1, 3, 64, 64), profile)


def _tiny_onnx(path, qdq, batch="1"):
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    dim = 1 if batch == "1" else "batch"
    inits = [numpy_helper.from_array(np.array(0.1, np.float32), "scale"),
             numpy_helper.from_array(np.array(0, np.int8), "zero")]
    nodes = ([helper.make_node("QuantizeLinear", ["images", "scale", "zero"], ["q"]),
              helper.make_node("DequantizeLinear", ["q", "scale", "zero"], ["dq"]),
              helper.make_node("Relu", ["dq"], ["out"])] if qdq else [helper.make_node("Relu", ["images"], ["out"])])
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [dim, 3, 8, 8])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [dim, 3, 8, 8])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    helper.set_model_props(model, {"precision": "int8" if qdq else "fp32", "batch": "dynamic:1,2,4"})
    onnx.save(model, path)
    return path


def test_onnx_input_reads_qdq_and_dims(tmp_path):
    inp = onnx_input(_tiny_onnx(tmp_path / "q.onnx", qdq=True))
    assert inp.has_qdq and inp.dims == (1, 3, 8, 8) and inp.meta["precision"] == "int8"
    inp = onnx_input(_tiny_onnx(tmp_path / "f.onnx", qdq=False, batch="dyn"))
    assert not inp.has_qdq and inp.dims == (-1, 3, 8, 8)


def test_fp32_nodes_are_counted_from_the_files_own_types(tmp_path):
    """What a weakly typed build pins comes from the file: nodes whose outputs are float32 (casts, Q/DQ aside)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node("Cast", ["images"], ["h"], to=TensorProto.FLOAT16),
             helper.make_node("Relu", ["h"], ["h2"]),                                   # FP16 math
             helper.make_node("Cast", ["h2"], ["f"], to=TensorProto.FLOAT),
             helper.make_node("ReduceMean", ["f"], ["m"], axes=[2, 3]),                 # an FP32 island
             helper.make_node("Mul", ["m", "two"], ["out"]),                            # FP32 too
             helper.make_node("Flatten", ["f"], ["flat"]),
             helper.make_node("TopK", ["flat", "k"], ["top", "index"]),                 # FP32 values, INT64 indices
             helper.make_node("Greater", ["top", "two"], ["over"])]                     # FP32 in, BOOL out
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(np.array(2, np.float32), "two"),
                               numpy_helper.from_array(np.array([5], np.int64), "k")])
    path = tmp_path / "mixed.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    assert fp32_node_count(onnx.load(str(path))) == 5     # ReduceMean, Mul, Flatten, TopK, Greater (not Relu, Casts)
    assert fp32_node_count(onnx.load(str(_tiny_onnx(tmp_path / "q.onnx", qdq=True)))) == 1   # Relu; Q/DQ not counted


def test_a_weak_build_that_cannot_pin_is_refused():
    """If a TensorRT version typed the FP16 file's layers FP32, pinning them would run it all in FP32; pinning
    nothing would run the tail in FP16: both refused with one line, never built unpinned."""
    assert pins_plausibly(90, 67) and pins_plausibly(38, 38) and pins_plausibly(0, 0)
    assert not pins_plausibly(600, 67) and not pins_plausibly(30, 0) and not pins_plausibly(0, 38)
    check_pinnable(settings(), 90, 700, 67, "8.6.1")
    with pytest.raises(DeployError, match=r"m.onnx: .*TensorRT 8.6.1 types 600 of 700 layers FP32 and the file has "
                                          r"67 FP32 nodes; refused"):
        check_pinnable(settings(), 600, 700, 67, "8.6.1")
    with pytest.raises(DeployError, match="types 0 of 700 layers FP32 and the file has 38"):
        check_pinnable(settings(), 0, 700, 38, "8.6.1")
    with pytest.raises(DeployError, match="ONNX cannot type the file"):
        check_pinnable(settings(), 40, 700, None, "8.6.1")


def test_the_tail_is_what_reaches_no_convolution():
    """One rule for ONNX nodes and TensorRT layers: (is a conv, inputs, outputs) in topological order."""
    nodes = [(False, ["images"], ["x"]),          # 0 normalize: feeds conv 1
             (True, ["x", "w"], ["c"]),           # 1 conv
             (False, ["c"], ["r"]),               # 2 relu: feeds conv 3
             (True, ["r", "w2"], ["h"]),          # 3 conv (head)
             (False, ["h"], ["flat"]),            # 4 reshape: tail
             (False, ["flat", "anchors"], ["boxes"]),   # 5 decode: tail
             (False, ["r"], ["side"])]            # 6 a branch that ends without a conv: tail too
    assert conv_free_nodes(nodes) == {4, 5, 6}
    assert conv_free_nodes([]) == set()


def test_the_86_int8_form_pins_its_tail_only(tmp_path):
    """FP32 math with --int8 --fp16: pinning every FP32 node would pin the whole body; the tail stays FP32."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node("Mul", ["images", "k"], ["x"]),
             helper.make_node("Conv", ["x", "w"], ["c"]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Sigmoid", ["r"], ["out"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(np.ones((4, 3, 1, 1), np.float32), "w"),
                               numpy_helper.from_array(np.array(2, np.float32), "k")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    assert fp32_node_count(model) == 4 and fp32_node_count(model, tail_only=True) == 2   # Relu, Sigmoid
    assert pins_tail_only({"qdq_form": "fp32-opset17"}) and not pins_tail_only({"precision": "fp16"})
    model.graph.node.append(helper.make_node("Unknown", ["out"], ["z"], domain="foreign"))
    assert fp32_node_count(model) is None                 # untypable: check_pinnable refuses


def test_files_for_a_newer_tensorrt_are_refused_with_the_form_to_use():
    ten = {"precision": "int8", "min_tensorrt": "10.0", "qdq_form": "fp16-opset19"}
    check_min_tensorrt(settings(), ten, "10.3.0")
    with pytest.raises(DeployError, match=r"m.onnx: this INT8 file is the form for TensorRT >= 10.0 \(qdq_form "
                                          r"fp16-opset19\); this is TensorRT 8.6.1: .*quantize --precision int8 "
                                          r"--trt-version 8.6$"):
        check_min_tensorrt(settings(), ten, "8.6.1")
    check_min_tensorrt(settings(), {"precision": "int8", "min_tensorrt": "8.6"}, "8.6.1")
    check_min_tensorrt(settings(), {"precision": "fp32"}, "8.6.1")          # not recorded: the parser decides
    with pytest.raises(DeployError, match=r"needs TensorRT >= 10.0 .*export --opset 17"):
        check_min_tensorrt(settings(), {"precision": "fp32", "min_tensorrt": "10.0"}, "8.6.1")


def test_the_86_int8_form_on_10_is_built_strongly_typed_with_advice():
    form86 = {"precision": "int8", "min_tensorrt": "8.6", "qdq_form": "fp32-opset17"}
    assert build_precision(settings(), "int8", "10.3.0", True) == (True, [])
    advice = form_advice(form86, "10.3.0", True)
    assert advice and "INT8 convolutions and FP32 everywhere else" in advice and "quantize --precision int8" in advice
    assert form_advice(form86, "8.6.1", False) is None
    assert form_advice({**form86, "qdq_form": "fp16-opset19"}, "10.3.0", True) is None


def test_version_compatible_refuses_a_plugin_file(tmp_path):
    """Only nvinfer_vc_plugin (ROIAlign) can travel in a version-compatible plan; EfficientNMS_TRT cannot."""
    import onnx

    path = _tiny_onnx(tmp_path / "p.onnx", qdq=False)
    model = onnx.load(str(path))
    model.graph.node.append(onnx.helper.make_node("EfficientNMS_TRT", ["out"], ["nms"], domain="trt.plugins"))
    onnx.save(model, str(path))
    inp = onnx_input(path)
    assert inp.plugins == ("EfficientNMS_TRT",)
    check_version_compatible(settings(), inp)                                 # not version-compatible: fine
    with pytest.raises(DeployError, match="cannot carry the EfficientNMS_TRT plugin.*--nms onnx"):
        check_version_compatible(settings(version_compatible=True), inp)
    check_version_compatible(settings(version_compatible=True), onnx_input(_tiny_onnx(tmp_path / "f.onnx", qdq=False)))


def test_engine_building_does_not_import_calibration():
    """Data flow model -> export -> calibration -> engine: the caller hands the calibrator in."""
    import ast

    for module in ("engine_build.py", "build_plan.py"):
        tree = ast.parse((ROOT / "export" / module).read_text())
        imported = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        assert imported and not [m for m in imported if m.split(".")[0] == "calibration"], module


class FakeTRT:
    """Only the enum values network_flags reads; the numbers are TensorRT's."""
    class NetworkDefinitionCreationFlag:
        EXPLICIT_BATCH = 0
        STRONGLY_TYPED = 1

    def __init__(self, version):
        self.__version__ = version


def test_network_flags_per_version():
    assert network_flags(FakeTRT("8.6.1"), False) == 1
    assert network_flags(FakeTRT("10.13.0"), True) == 2
    assert network_flags(FakeTRT("10.13.0"), False) == 0
    assert network_flags(FakeTRT("11.1.0"), True) == network_flags(FakeTRT("11.1.0"), False) == 0   # always strong
    assert wants_strong_typing("11.1.0", "fp32")


@pytest.fixture()
def engine(tmp_path):
    path = tmp_path / "m.engine"
    path.write_bytes(b"\x00" * 1000)
    write_sidecar(path, {"tensorrt_version": "10.13.0.35", "gpu_name": "NVIDIA H100", "compute_capability": "9.0",
                         "onnx_metadata": {}})
    return path


def test_sidecar_roundtrip_and_checks(engine):
    side = read_sidecar(engine)
    assert side["engine_bytes"] == 1000 and len(side["engine_sha256"]) == 64
    check_engine(engine, side, "10.13.0.35", "NVIDIA H100", "9.0")        # matches: no error
    with pytest.raises(DeployError, match="built with TensorRT 10.13.0.35, this is TensorRT 8.6.1"):
        check_engine(engine, side, "8.6.1", "NVIDIA H100", "9.0")
    with pytest.raises(DeployError, match=r"built for NVIDIA H100 \(sm 9.0\), this GPU is Orin \(sm 8.7\)"):
        check_engine(engine, side, "10.13.0.35", "Orin", "8.7")
    engine.write_bytes(b"\x00" * 600)                                        # truncated copy
    with pytest.raises(DeployError, match="600 bytes but built as 1000"):
        check_engine(engine, side, "10.13.0.35", "NVIDIA H100", "9.0")


def test_version_compatible_engines_follow_the_cross_major_rule(engine):
    """TensorRT 11.4.1 support matrix, Engine Portability: a 10.x VC engine loads on 11.x; older never."""
    side = {**read_sidecar(engine), "version_compatible": True}
    check_engine(engine, side, "10.14.1", "NVIDIA H100", "9.0")
    check_engine(engine, side, "11.0.0", "NVIDIA H100", "9.0")             # 10 VC engine on an 11 runtime
    with pytest.raises(DeployError, match="this is TensorRT 10.12.0"):
        check_engine(engine, side, "10.12.0", "NVIDIA H100", "9.0")         # older runtime: never


def test_engine_without_tensorrt_is_one_clear_error(engine):
    if tensorrt_available():
        pytest.skip("TensorRT is installed here")
    out = subprocess.run([sys.executable, "-m", "effdet_deploy", "infer", "--model", str(engine), "--input",
                          str(ROOT / "effdet_deploy" / "assets" / "demo.jpg"), "--output", str(engine.parent / "out")],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "tensorrt" in out.stderr.lower()


@pytest.mark.tensorrt
@needs_trt
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_engine_matches_onnx_runtime(tmp_path, precision):
    """Build D0 (shapes_d0) engines from the verified ONNX files and compare detections with ORT."""
    from export.engine_build import engine_from_onnx
    from quantize_helpers import shapes_files
    from runtime.agreement import agreement
    from effdet.synthetic import render

    onnx_path = shapes_files(tmp_path)[precision]
    engine_path = engine_from_onnx(BuildSettings(onnx=onnx_path, engine=tmp_path / f"{precision}.engine"))
    images = [render(11, i).image for i in range(8)]
    ref = Detector(onnx_path).detect(images)
    got = Detector(engine_path).detect(images)
    result = agreement(ref, got, score_threshold=0.3)
    print(f"TensorRT {precision} vs ORT: F1 {result.f1:.3f}, mean IoU {result.mean_iou:.3f}")
    assert result.f1 >= (0.98 if precision != "int8" else 0.9)


def test_build_warns_what_the_lint_finds_for_the_installed_tensorrt(tmp_path, caplog):
    import logging

    import onnx

    from export.engine_build import _warn_lint

    path = _tiny_onnx(tmp_path / "q.onnx", qdq=True)
    model = onnx.load(path)
    model.opset_import[0].version = 19                  # what ModelOpt writes for INT8 today
    onnx.save(model, path)
    with caplog.at_level(logging.WARNING, logger="effdet_deploy"):
        _warn_lint(path, "8.6.1")
        _warn_lint(path, "10.3.0")
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1 and "opset 19 is above TensorRT 8.6.1's parser range" in messages[0]


def test_batch_metadata_reads_the_same_for_export_runtime_and_build():
    from runtime.model_info import ModelInfo, batch_profile

    assert batch_profile("dynamic:1,4,8") == (1, 4, 8) and batch_profile("2") == (2, 2, 2)
    meta = {"model": "m", "image_size": "64,64", "mean": "[0,0,0]", "std": "[1,1,1]", "num_classes": "1",
            "batch": "dynamic:2,3,6"}
    assert ModelInfo.from_metadata(meta, "f.onnx").batch == (2, 6)
    with pytest.raises(DeployError, match="malformed metadata"):
        ModelInfo.from_metadata({**meta, "batch": "dynamic:2,x,6"}, "f.onnx")


def test_build_flags_become_settings():
    """trtexec's names and ours parse to the same BuildSettings (profiling verbosity for layer inspection)."""
    from effdet_deploy.cli import build_parser
    from effdet_deploy.commands.build import BuildArgs, settings_from

    parser = build_parser()
    for flag in ("--profilingVerbosity", "--profiling-verbosity"):
        args = parser.parse_args(["build", "--onnx", "m.onnx", flag, "detailed", "--useDLACore", "0"])
        s = settings_from(BuildArgs(**vars(args)))                     # as the command's run() does
        assert s.detailed_profiling and s.dla_core == 0 and s.engine == Path("m.engine")
    args = parser.parse_args(["build", "--onnx", "m.onnx"])
    assert not settings_from(BuildArgs(**vars(args))).detailed_profiling
