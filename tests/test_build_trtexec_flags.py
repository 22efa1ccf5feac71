"""trtexec habits in `build` (issue 25), without TensorRT: --saveEngine, --memPoolSize, --shapes, --best,
--verbose after the subcommand, and --loadEngine's sidecar verification with DESIGN's exit codes."""
import logging
from pathlib import Path

import numpy as np
import pytest

from effdet_deploy.cli import build_parser, main
from effdet_deploy.commands.build import BuildArgs, settings_from
from export.build_plan import BuildSettings, build_precision
from export.trtexec_flags import parse_mem_pool_size, resolve_best
from runtime.engine_sidecar import write_sidecar
from runtime.errors import DeployError
from runtime.trt_compat import tensorrt_available


def settings(*flags: str) -> BuildSettings:
    args = build_parser().parse_args(["build", *flags])
    return settings_from(BuildArgs(**vars(args)))


@pytest.mark.parametrize("text, mib", [("workspace:1024", 1024), ("workspace:2G", 2048), ("workspace:2GiB", 2048),
                                       ("workspace:512MiB", 512), ("workspace:1.5G", 1536),
                                       ("workspace:1048576B", 1), ("workspace:4096K", 4)])
def test_mem_pool_size_as_trtexec_reads_it(text, mib):
    assert parse_mem_pool_size(text) == mib


@pytest.mark.parametrize("text, words", [("dlaSRAM:1", "only workspace"), ("cache:1", "unknown memory pool"),
                                         ("workspace", "not POOL:SIZE"), ("workspace:-1", "number with an optional"),
                                         ("workspace:1T", "number with an optional"), ("workspace:0.5", "at least 1 MiB")])
def test_mem_pool_size_mistakes(text, words):
    with pytest.raises(DeployError, match=words):
        parse_mem_pool_size(text)


def test_save_engine_mem_pool_and_shapes_reach_the_settings():
    s = settings("--onnx", "m.onnx", "--saveEngine", "out.engine", "--memPoolSize=workspace:2GiB",
                 "--shapes", "images:2x3x128x128")
    assert s.engine == Path("out.engine") and s.workspace_mib == 2048
    assert s.min_shapes == s.opt_shapes == s.max_shapes == {"images": (2, 3, 128, 128)}
    s = settings("--onnx", "m.onnx", "--minShapes", "images:1x3x128x128", "--optShapes", "images:4x3x128x128",
                 "--maxShapes", "images:8x3x128x128", "--shapes", "images:2x3x128x128")
    assert s.opt_shapes == {"images": (4, 3, 128, 128)}                 # a given profile stays
    with pytest.raises(DeployError, match="outside the profile"):
        settings("--onnx", "m.onnx", "--minShapes", "images:1x3x128x128", "--optShapes", "images:4x3x128x128",
                 "--maxShapes", "images:8x3x128x128", "--shapes", "images:16x3x128x128")
    with pytest.raises(DeployError, match="set the same limit"):
        settings("--onnx", "m.onnx", "--workspace", "64", "--memPoolSize=workspace:64")


def test_verbose_after_the_subcommand():
    assert build_parser().parse_args(["build", "--onnx", "m.onnx", "-v"]).verbose is True
    assert build_parser().parse_args(["build", "--onnx", "m.onnx"]).verbose is False
    assert build_parser().parse_args(["-v", "build", "--onnx", "m.onnx"]).verbose is True


def test_best_per_typing(caplog):
    caplog.set_level(logging.INFO, logger="effdet_deploy")
    base = BuildSettings(onnx=Path("m.onnx"), engine=Path("m.engine"), best=True)
    strong = resolve_best(base, "fp16", "10.13.0", has_qdq=False)    # FP16 file on 10.x: strongly typed
    assert (strong.fp16, strong.int8, strong.best) == (False, False, False) and "strongly typed" in caplog.text
    assert build_precision(strong, "fp16", "10.13.0") == (True, [])
    assert resolve_best(base, "int8", "11.0.0", has_qdq=True).int8 is False     # 11.x: strongly typed only
    weak = resolve_best(base, "int8", "8.6.1", has_qdq=True)                   # 8.6: --fp16 --int8
    assert (weak.fp16, weak.int8) == (True, True)
    assert build_precision(weak, "int8", "8.6.1", has_qdq=True) == (False, ["FP16", "INT8",
                                                                            "PREFER_PRECISION_CONSTRAINTS"])
    fp32 = resolve_best(base, "fp32", "10.13.0", has_qdq=False)                # no scales: FP16 only, said so
    assert (fp32.fp16, fp32.int8) == (True, False) and "INT8 not" in caplog.text
    with pytest.raises(DeployError, match="--best and --strongly-typed"):
        resolve_best(BuildSettings(onnx=Path("m.onnx"), engine=Path("e"), best=True, strongly_typed=True),
                     "fp16", "10.13.0", has_qdq=False)


@pytest.mark.skipif(tensorrt_available(), reason="with TensorRT --loadEngine deserializes (GPU tier)")
def test_load_engine_verifies_the_sidecar_without_tensorrt(tmp_path, capsys):
    engine = tmp_path / "m.engine"
    engine.write_bytes(np.random.default_rng(0).bytes(4096))
    assert main(["build", "--loadEngine", str(engine)]) == 2                  # no sidecar: bad input
    assert "no m.engine.json beside it" in capsys.readouterr().err
    write_sidecar(engine, {"tensorrt_version": "10.13.0", "gpu_name": "NVIDIA H100", "compute_capability": "9.0",
                           "onnx_metadata": {"model": "shapes_d0", "precision": "fp16"}})
    assert main(["build", "--loadEngine", str(engine)]) == 3                  # verified as far as possible
    out = capsys.readouterr().out
    assert "size and sha256 match" in out and "INCONCLUSIVE" in out and "TensorRT 10.13.0" in out
    data = bytearray(engine.read_bytes())
    data[100] ^= 1
    engine.write_bytes(bytes(data))                                          # same size, other bytes
    assert main(["build", "--loadEngine", str(engine)]) == 1 and "sha256 differs" in capsys.readouterr().out
    assert main(["build", "--loadEngine", str(engine), "--onnx", "m.onnx"]) == 2


def test_shapes_on_a_static_input():
    """trtexec refuses explicit shapes on a static model; here the static shape itself is accepted (nothing to
    choose) and any other is refused naming --shapes."""
    from export.build_plan import profile_shapes

    dims = (1, 3, 128, 128)
    same = settings("--onnx", "m.onnx", "--shapes", "images:1x3x128x128")
    assert profile_shapes(same, "images", dims, {}) is None
    other = settings("--onnx", "m.onnx", "--shapes", "images:2x3x128x128")
    with pytest.raises(DeployError, match=r"is static .*drop --shapes"):
        profile_shapes(other, "images", dims, {})
