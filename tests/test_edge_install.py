"""The edge install the README names (issue 13.2): `pip install efficientdet-deploy onnxruntime-gpu` in a fresh
virtual environment - no torch, no onnx, no onnxruntime-extensions - opens and runs ONNX files; only a file
with the EfficientNMS_TRT node needs the extra, and then the one error line names it.

A real venv (python -m venv + pip from the package index), not blocked imports. Slow: pip installs
onnxruntime-gpu (~250 MB). Skipped with the reason only when pip cannot reach a package index."""
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from export.onnx_export import export_onnx
from export.settings import ExportSettings

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("effdet", "export", "runtime", "calibration", "effdet_deploy")
pytestmark = [pytest.mark.slow, pytest.mark.integration]

EDGE_SCRIPT = textwrap.dedent("""
    import importlib.util, sys
    import numpy as np
    for absent in ("torch", "onnx", "onnxruntime_extensions"):
        assert importlib.util.find_spec(absent) is None, absent + " is installed: not the edge install"
    from runtime import Detector, DeployError
    image = np.random.default_rng(0).integers(0, 255, (90, 120, 3), dtype=np.uint8)
    for name in ("onnxnms.onnx", "raw.onnx"):
        with Detector(name) as det:
            result = det.detect(image)
            print(name, "ran", det.backend.describe(), len(result))
    from effdet_deploy.tool_images import ASSET      # the built-in picture ships in the wheel (package data)
    assert ASSET.is_file() and "site-packages" in str(ASSET), ASSET
    try:
        Detector("plugin.onnx")
    except DeployError as e:
        print("plugin error:", e)
    else:
        sys.exit("plugin.onnx opened without onnxruntime-extensions")
""")


def _pip(venv: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *args], capture_output=True,
                          text=True, timeout=900)


def _source_copy(target: Path) -> Path:
    """The project's sources (what its wheel holds), so pip builds outside the shared working tree."""
    for name in PACKAGES:
        shutil.copytree(ROOT / name, target / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, target / name)
    return target


def test_base_install_plus_onnxruntime_gpu_opens_onnx_files(tmp_path):
    venv = tmp_path / "edge-venv"
    made = subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True, timeout=300)
    if made.returncode != 0:
        pytest.skip(f"python -m venv failed here: {made.stderr.strip()[-200:]}")
    installed = _pip(venv, str(_source_copy(tmp_path / "src")), "onnxruntime-gpu")
    if installed.returncode != 0:
        offline = any(s in installed.stderr for s in ("No matching distribution", "Could not find a version",
                                                      "NewConnectionError", "Network is unreachable"))
        if offline:
            pytest.skip(f"pip cannot reach a package index for onnxruntime-gpu: {installed.stderr.strip()[-200:]}")
        pytest.fail(installed.stderr[-2000:])
    work = tmp_path / "work"
    work.mkdir()
    for name, nms in (("plugin", "efficient"), ("onnxnms", "onnx"), ("raw", "none")):
        export_onnx(ExportSettings(model="shapes_d0", output=work / f"{name}.onnx", image_size=(128, 128), nms=nms))
    (work / "edge.py").write_text(EDGE_SCRIPT)
    run = subprocess.run([str(venv / "bin" / "python"), "edge.py"], cwd=work, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "onnxnms.onnx ran" in run.stdout and "raw.onnx ran" in run.stdout
    error = next(line for line in run.stdout.splitlines() if line.startswith("plugin error:"))
    assert "plugin.onnx" in error and "pip install onnxruntime-extensions" in error and "onnxruntime-extensions" in error
    assert "Traceback" not in run.stderr and "[E:onnxruntime" not in run.stderr
