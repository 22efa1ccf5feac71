"""Argument mistakes are answered before torch is imported (issue 25: they took 5-11 s): export's settings are
checked by export/settings_check.py, which imports neither torch nor onnx."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROBE = """
import sys
from effdet_deploy.cli import main
code = main(sys.argv[1:])
print("CODE", code, "torch" in sys.modules, "onnx" in sys.modules)
"""


@pytest.mark.parametrize("flags, message", [(["--model", "nosuch"], "unknown model 'nosuch'"),
                                            (["--model", "d0", "--image-size", "0"], "image"),
                                            (["--model", "d0", "--opset", "21"], "--opset must be 13..20"),
                                            (["--model", "d0", "--nms", "onnx", "--pre-nms-top-k", "5000"],
                                             "--pre-nms-top-k")])
def test_export_argument_errors_come_before_torch(tmp_path, flags, message):
    run = subprocess.run([sys.executable, "-c", PROBE, "export", *flags, "--output", str(tmp_path / "x.onnx")],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.stdout.strip().splitlines()[-1] == "CODE 2 False False"
    assert message in run.stderr and len(run.stderr.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())
