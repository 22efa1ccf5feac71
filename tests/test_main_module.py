"""`python -m effdet_deploy` from a Python without our dependencies: one line naming the missing package."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_a_python_without_the_dependencies_gets_one_line():
    # -S: no site-packages, so numpy and Pillow are absent while the clone's own packages import (cwd = the clone)
    run = subprocess.run([sys.executable, "-S", "-m", "effdet_deploy", "--version"], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    line, = run.stderr.strip().splitlines()
    assert "has no '" in line and ".venv/bin/python -m effdet_deploy" in line
