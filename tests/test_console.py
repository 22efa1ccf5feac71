"""Console floods (issue 13.7): our progress on the console, third-party chatter (Python prints, C-level
writes, other packages' loggers - once, not twice) in a log file, -v shows it live; quantize's console is a
few lines of ours; ONNX Runtime's provider errors become one warning line."""
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from export.onnx_export import export_onnx
from export.settings import ExportSettings
from runtime.gpu import cuda_device_count
from optional_deps import require_modelopt

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent("""
    import logging, os, sys
    from pathlib import Path
    from effdet_deploy.console import third_party_to_log
    from runtime.log import logger
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)   # as the CLI does
    chatty = logging.getLogger("modelopt.onnx")        # ModelOpt's shape: own handler, and it propagates
    chatty.addHandler(logging.StreamHandler(sys.stderr))
    print("before")
    with third_party_to_log(Path(sys.argv[1]), verbose=sys.argv[2] == "1"):
        logger.info("our step 1/2")
        print("histogram line from a print")
        os.write(1, b"C-level stdout\\n")
        os.write(2, b"C-level stderr\\n")
        chatty.info("modelopt says hi")
        logging.getLogger("other").warning("root-only logger")
        logger.info("our step 2/2")
    print("after")
""")
THIRD_PARTY = ("histogram line from a print", "C-level stdout", "C-level stderr", "modelopt says hi",
               "root-only logger")


def _run(tmp_path, verbose):
    log = tmp_path / "out" / "x.log"
    r = subprocess.run([sys.executable, "-c", SCRIPT, str(log), "1" if verbose else "0"], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout + r.stderr, log.read_text()


def test_third_party_output_goes_to_the_log_once(tmp_path):
    console, log = _run(tmp_path, verbose=False)
    assert [line for line in console.splitlines()] == ["before", "our step 1/2", "our step 2/2", "after"]
    for line in THIRD_PARTY:
        assert log.count(line) == 1, (line, log)
    assert "our step 1/2" in log                 # the log has our steps too, for context


def test_verbose_shows_third_party_output_live(tmp_path):
    console, log = _run(tmp_path, verbose=True)
    for line in THIRD_PARTY + ("our step 1/2",):
        assert console.count(line) == 1 and log.count(line) == 1, (line, console)


def test_in_process_prints_reach_the_log_under_a_replaced_sys_stdout(tmp_path, capsys):
    """pytest (like any host) replaces sys.stdout: Python-level prints must still land in the log."""
    import os

    from effdet_deploy.console import third_party_to_log

    with third_party_to_log(tmp_path / "x.log"):
        print("histogram line from a print")
        os.write(2, b"C-level stderr\n")
    print("after")
    log = (tmp_path / "x.log").read_text()
    assert "histogram line from a print" in log and "C-level stderr" in log
    assert "histogram" not in capsys.readouterr().out


def test_failure_before_any_output_leaves_no_log(tmp_path):
    """Bad input (here a missing ONNX file) is one error line and no empty OUT.log beside --output;
    a failure after output was logged keeps its log."""
    from effdet_deploy.console import third_party_to_log

    (tmp_path / "calib").mkdir()
    r = subprocess.run([sys.executable, "-m", "effdet_deploy", "quantize", "--onnx", str(tmp_path / "none.onnx"),
                        "--output", str(tmp_path / "q.onnx"), "--precision", "int8", "--calib-dir",
                        str(tmp_path / "calib")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "error:" in r.stderr, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calib"]
    with pytest.raises(RuntimeError), third_party_to_log(tmp_path / "kept.log"):
        print("third-party line before the failure")
        raise RuntimeError("late failure")
    assert "third-party line" in (tmp_path / "kept.log").read_text()


@pytest.mark.slow
def test_quantize_console_is_ours(tmp_path):
    require_modelopt()
    fp32 = export_onnx(ExportSettings(model="shapes_d0", output=tmp_path / "m.onnx", image_size=(128, 128)))
    r = subprocess.run([sys.executable, "-m", "effdet_deploy", "quantize", "--onnx", str(fp32), "--output",
                        str(tmp_path / "m.fp16.onnx"), "--precision", "fp16"], cwd=ROOT, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    lines = (r.stdout + r.stderr).strip().splitlines()
    assert len(lines) <= 5 and not any("modelopt" in line for line in lines), lines
    assert "[modelopt]" in (tmp_path / "m.fp16.log").read_text()


def test_onnx_runtime_provider_failure_is_one_warning(tmp_path):
    pytest.importorskip("onnxruntime")
    model = export_onnx(ExportSettings(model="shapes_d0", output=tmp_path / "m.onnx", image_size=(128, 128),
                                       nms="none"))
    script = textwrap.dedent(f"""
        import logging, sys
        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
        from runtime.onnx_session import create_session
        from runtime.detector import Detector
        s = create_session({str(model)!r}, ["CUDAExecutionProvider", "CPUExecutionProvider"])
        print("providers", s.get_providers())
        Detector({str(model)!r}, device="cuda").close()
    """)
    r = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    if "CUDAExecutionProvider" in r.stdout.split("providers")[-1] or cuda_device_count():
        pytest.skip("CUDA works here: no fallback to report")
    warnings = [line for line in r.stdout.splitlines() if "CPU" in line and "providers" not in line]
    assert len(warnings) == 2, r.stdout                       # one per session: create_session's, then Detector's
    assert "could not start CUDAExecutionProvider" in warnings[0] and "no CUDA device" in warnings[1]
    assert "[E:onnxruntime" not in r.stderr and "[W:onnxruntime" not in r.stderr, r.stderr
