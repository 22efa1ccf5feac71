"""Ctrl-C in a command (issue 25): exit 130 with one line on stderr, no traceback, nothing half-written."""
import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def sigint_default() -> None:
    """Child processes get SIGINT's default action: a shell without job control (make under `&`, some CI runners)
    starts them with SIGINT ignored, and Python then never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def interrupt_after(line_prefix: str, argv: list[str], cwd: Path) -> tuple[int, str]:
    """Run `effdet-deploy argv`, send SIGINT once a stdout line starts with `line_prefix`; (exit code, stderr)."""
    proc = subprocess.Popen([sys.executable, "-m", "effdet_deploy", *argv], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            preexec_fn=sigint_default)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith(line_prefix):
                proc.send_signal(signal.SIGINT)
                break
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    return proc.returncode, err


def test_export_interrupted_mid_trace(tmp_path):
    code, err = interrupt_after("[2/5]", ["export", "--model", "shapes_d0", "--output", "d0.onnx",
                                         "--image-size", "128"], tmp_path)
    lines = [x for x in err.splitlines() if x.strip()]
    assert code == 130 and "Traceback" not in err
    assert lines[-1] == "effdet-deploy export: interrupted"
    assert not list(tmp_path.iterdir())                   # no ONNX file, no temporary file
