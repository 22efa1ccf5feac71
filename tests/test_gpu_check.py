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


def test_int8_convolutions_are_counted_from_the_engine_inspectors_json():
    """The keys trtexec --exportLayerInfo / Polygraphy read (shape of TensorRT's sampleEditableTimingCache README)."""
    import json

    def layer(kind, fmt):
        return {"Name": kind, "LayerType": kind, "Inputs": [{"Name": "x", "Dimensions": [1, 8, 4, 4],
                                                             "Format/Datatype": fmt}], "Outputs": []}
    text = json.dumps({"Layers": [layer("CaskConvolution", "Int8 NC/32HW32"), layer("CaskConvolution",
                                  "Half precision NC/8HW8"), layer("Reformat", "Int8 NC/32HW32"),
                                  "a layer without detail"], "Bindings": ["images"]})
    assert gpu_check.conv_precisions(text) == (1, 2)
    assert gpu_check.conv_precisions("") == (0, 0) and gpu_check.conv_precisions("not json") == (0, 0)
