"""Engine build and TensorRT runtime: the decisions made without TensorRT (shapes, precision mode,
engine/sidecar checks) are tested here; building and running engines needs TensorRT and a GPU and is
marked `tensorrt` (skipped with the reason otherwise)."""
import subprocess
import sys
from pathlib import Path

import pytest

from export.engine_build import BuildSettings, build_precision, parse_shapes, profile_shapes
from runtime.detector import Detector
from runtime.engine_sidecar import check_engine, read_sidecar, write_sidecar
from runtime.errors import DeployError
from runtime.gpu import cuda_device_count
from runtime.trt_compat import network_flags, wants_strong_typing

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


@pytest.mark.parametrize("version, precision, flags, strong, legacy", [
    ("8.6.1", "fp32", {"fp16": True}, False, ["FP16"]),
    ("10.8.0", "fp16", {}, False, []),                  # before 10.12: weak typing by policy
    ("10.13.0.35", "fp16", {}, True, []),
    ("10.13.0.35", "int8", {}, True, []),
    ("10.13.0.35", "fp32", {}, False, []),
    ("11.0.0", "fp32", {}, True, []),
])
def test_precision_mode(version, precision, flags, strong, legacy):
    assert build_precision(settings(**flags), precision, version) == (strong, legacy)


def test_precision_mode_errors(tmp_path):
    with pytest.raises(DeployError, match="strongly typed"):
        build_precision(settings(fp16=True), "fp16", "10.13.0")
    with pytest.raises(DeployError, match="no --fp16/--int8"):
        build_precision(settings(fp16=True, strongly_typed=False), "fp32", "11.0.0")
    with pytest.raises(DeployError, match="--calib-cache"):
        build_precision(settings(int8=True), "fp32", "8.6.1")
    with pytest.raises(DeployError, match="give --calib-dir"):
        build_precision(settings(int8=True, calib_cache=tmp_path / "none.cache"), "fp32", "8.6.1")


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
    assert wants_strong_typing("11.1.0", "fp32")


@pytest.fixture()
def engine(tmp_path):
    path = tmp_path / "m.engine"
    path.write_bytes(b"\x00" * 1000)
    write_sidecar(path, {"tensorrt_version": "10.13.0.35", "gpu_name": "NVIDIA H100", "compute_capability": "9.0"})
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


def test_version_compatible_engines_load_on_newer_minor(engine):
    side = {**read_sidecar(engine), "version_compatible": True}
    check_engine(engine, side, "10.14.1", "NVIDIA H100", "9.0")
    with pytest.raises(DeployError, match="this is TensorRT 11.0"):
        check_engine(engine, side, "11.0.0", "NVIDIA H100", "9.0")


def test_engine_without_tensorrt_is_one_clear_error(engine):
    if _has_tensorrt():
        pytest.skip("TensorRT is installed here")
    out = subprocess.run([sys.executable, "-m", "effdet_deploy", "infer", "--model", str(engine), "--input",
                          str(ROOT / "assets" / "demo.jpg"), "--output", str(engine.parent / "out")],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "tensorrt" in out.stderr.lower()


def _has_tensorrt() -> bool:
    try:
        import tensorrt
        return hasattr(tensorrt, "__version__")
    except ImportError:
        return False


needs_trt = pytest.mark.skipif(not (_has_tensorrt() and cuda_device_count()),
                               reason="needs TensorRT and an NVIDIA GPU (not on this machine)")


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
