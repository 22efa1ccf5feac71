"""tools/gpu_check.py (`make gpu-check`): the path that runs here (nothing to check with: exit 2, one line)
and the verdict and report logic; the engine checks themselves need TensorRT and a GPU."""
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from runtime.gpu import cuda_device_count
from runtime.trt_compat import tensorrt_available

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "tools" / "gpu_check.py")
gpu_check = importlib.util.module_from_spec(spec)
sys.modules["gpu_check"] = gpu_check          # dataclasses look their module up there
spec.loader.exec_module(gpu_check)


@pytest.mark.skipif(tensorrt_available() and cuda_device_count() > 0, reason="TensorRT and a GPU are here")
def test_without_tensorrt_or_gpu_one_line_exit_2(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "tools" / "gpu_check.py"), "--output", str(tmp_path / "g")],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert out.stderr.startswith("gpu-check: cannot run here: ")
    assert ("TensorRT" in out.stderr) != tensorrt_available() and ("no NVIDIA GPU" in out.stderr) == (cuda_device_count() == 0)
    assert not (tmp_path / "g").exists()


def test_matrix_is_12_engines_and_2_more_on_dla():
    names = [c.name for c in gpu_check.all_cases(0)]
    assert len(set(names)) == 12 and "int8-onnxnms-dynamic" in names and "fp32-pluginnms-static" in names
    jetson = gpu_check.all_cases(2)
    assert [c.name for c in jetson[12:]] == ["fp16-pluginnms-static-dla0", "int8-pluginnms-static-dla0"]
    assert all(c.onnx_case in gpu_check.CASES for c in jetson)       # DLA engines reuse the GPU cases' files


def test_exit_code_and_report():
    Row = gpu_check.Row
    passing = Row("fp32-pluginnms-static", "PASS", [], {"F1": 1.0, "median ms": 1.234})
    unsure = Row("int8-onnxnms-static", "INCONCLUSIVE", ["only 3 matched detection(s)"])
    failing = Row("fp16-pluginnms-dynamic", "FAIL", ["max box error (px) 3.1 > 0.5"])
    assert gpu_check.exit_code([passing]) == 0
    assert gpu_check.exit_code([passing, unsure]) == 3
    assert gpu_check.exit_code([unsure, failing]) == 1
    assert gpu_check.exit_code([]) == 3                       # nothing checked is not a pass
    tiers = Row("pytest -m 'cuda or tensorrt'", "PASS", ["12 passed"])
    text = gpu_check.report_markdown({"TensorRT": "10.13.0.35", "GPU": "H100 (sm 9.0)"}, [passing, failing], tiers)
    assert "- TensorRT: 10.13.0.35" in text and "| fp32-pluginnms-static | PASS | - | 1 | - |" in text
    assert "| 1.234 |" in text and "- fp16-pluginnms-dynamic: FAIL: max box error (px) 3.1 > 0.5" in text
    assert text.rstrip().endswith("Overall: FAIL")


def test_report_before_the_tiers_is_incomplete():
    """Written after each engine: a run that dies later leaves a report that says it is not the whole check."""
    built = gpu_check.Row("fp16-onnxnms-static", "PASS", [], {"F1": 1.0}, "strongly typed")
    text = gpu_check.report_markdown({"TensorRT": "11.1.0"}, [built], None)
    assert "| fp16-onnxnms-static | PASS | strongly typed | 1 |" in text
    assert "not run yet (1 of 12 engines checked)" in text
    assert "(1 of 14 engines checked)" in gpu_check.report_markdown({}, [built], None, 14) and text.rstrip().endswith("Overall: INCOMPLETE")


@pytest.mark.parametrize("code, stdout, verdict", [
    (0, "....\n4 passed in 3.1s", "PASS"),
    (0, "SKIPPED [1] tests/test_x.py:3: needs ModelOpt\n3 skipped in 0.2s", "INCONCLUSIVE"),   # ran nothing
    (5, "no tests ran in 0.1s", "INCONCLUSIVE"),
    (1, "F.\n1 failed, 1 passed in 2s", "FAIL"),
])
def test_test_tiers_pass_only_when_something_passed(code, stdout, verdict):
    row = gpu_check.tiers_row("tiers", code, stdout)
    assert row.verdict == verdict
    if code == 0 and verdict == "INCONCLUSIVE":
        assert "needs ModelOpt" in row.reasons[1]


def test_a_file_that_could_not_be_made_is_that_engine_s_fail():
    case = gpu_check.CASES[0]
    row = gpu_check.check_engine(case, "making the ONNX file failed: OSError: disk full", [], 1)
    assert row.verdict == "FAIL" and row.reasons == ["making the ONNX file failed: OSError: disk full"]
    assert gpu_check._made(lambda: (_ for _ in ()).throw(OSError("disk full"))).endswith("OSError: disk full")


def test_report_puts_fp16_and_int8_engine_time_side_by_side():
    Row = gpu_check.Row
    rows = [Row("fp16-pluginnms-static", "PASS", [], {"GPU compute ms": 2.0, "median ms": 5.0}),
            Row("int8-pluginnms-static", "PASS", [], {"GPU compute ms": 1.5, "median ms": 4.5},
                notes=["standalone Quantize: q_in"]),
            Row("fp16-onnxnms-dynamic", "PASS", [], {"median ms": 8.0}),
            Row("int8-onnxnms-dynamic", "FAIL", [], {"median ms": 10.0})]
    text = gpu_check.report_markdown({"TensorRT": "10.3.0"}, rows, None)
    assert "| pluginnms-static | GPU compute ms | 2 | 1.5 | 0.75 |" in text
    assert "| onnxnms-dynamic | median ms | 8 | 10 | 1.25 |" in text        # no GPU compute on one side: whole call
    assert "- int8-pluginnms-static: standalone Quantize: q_in" in text


def test_a_case_this_tensorrt_cannot_build_is_skipped_not_failed():
    """DLA + Q/DQ on 8.x: the build refuses it (export/build_plan.py check_dla_qdq), so the row says why and the
    check can still pass."""
    dla_int8 = gpu_check.DLA_CASES[1]
    assert "runs no explicit quantization on DLA" in gpu_check.skip_reason(dla_int8, "8.6.2")
    assert gpu_check.skip_reason(dla_int8, "10.3.0") is None and gpu_check.skip_reason(gpu_check.DLA_CASES[0], "8.6.2") is None
    Row = gpu_check.Row
    assert gpu_check.exit_code([Row("a", "PASS"), Row("int8-pluginnms-static-dla0", "SKIPPED", ["why"])]) == 0
    assert "- x: SKIPPED: why" in gpu_check.report_markdown({}, [Row("x", "SKIPPED", ["why"])], None)


def test_the_int8_file_is_made_in_the_form_for_the_installed_tensorrt():
    """8.6 gets the FP32 opset-17 form (the 10.0 form would be refused by the build), 10.x+ ModelOpt's."""
    assert gpu_check.quantize_trt_version("8.6.2.3") == "8.6"
    assert gpu_check.quantize_trt_version("10.13.0.35") == "10.13"


def test_setup_keeps_the_cuda_major_of_the_installed_tensorrt():
    """`make` used to reinstall cuda-python 12 over a [trt-cu13] install (every gpu-check row then a false FAIL)."""
    spec = importlib.util.spec_from_file_location("cuda_python_spec", ROOT / "tools" / "cuda_python_spec.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    want = module.cuda_python_requirement
    assert want({"numpy": "2.1"}) == "cuda-python>=12.6.2,<13"                       # a fresh machine: as before
    assert want({"tensorrt-cu13": "10.13.3.9", "cuda-python": "13.0.1"}) is None      # [trt-cu13] kept
    assert want({"tensorrt_cu13": "10.13.3.9", "cuda-python": "12.9.0"}) == "cuda-python>=13,<14"
    assert want({"tensorrt-cu12": "10.13.3.9"}) == "cuda-python>=12.6.2,<13"
    assert want({"cuda-python": "12.6.2"}) is None and want({"cuda-python": "13.0.0"}) is None   # JetPack / user's


def test_export_extra_needs_no_onnxruntime_gpu_on_aarch64():
    """PyPI has no onnxruntime-gpu wheel for aarch64 (Jetson): the setup would stop before any check ran."""
    import tomllib

    from packaging.requirements import Requirement

    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["export"]

    def needed(machine):
        env = {"platform_machine": machine, "extra": ""}
        return {r.name for r in map(Requirement, extra) if r.marker is None or r.marker.evaluate(env)}
    assert "onnxruntime-gpu" not in needed("aarch64") and "onnxruntime" in needed("aarch64")
    assert "onnxruntime-gpu" in needed("x86_64") and "onnxruntime" not in needed("x86_64")
