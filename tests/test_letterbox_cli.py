import subprocess
import sys

import numpy as np
import pytest

from runtime.errors import DeployError
from runtime.letterbox import letterbox, to_original


def test_letterbox_round_trip():
    image = np.zeros((100, 200, 3), np.uint8)
    out, lb = letterbox(image, (64, 64), (10, 20, 30))
    assert out.shape == (64, 64, 3) and lb.scale == 0.32
    assert out[-1, -1].tolist() == [10, 20, 30]  # padding takes the mean color, image top-left
    back = to_original(np.float32([[0, 0, 32, 16], [-5, 0, 70, 70]]), lb)
    np.testing.assert_allclose(back, [[0, 0, 100, 50], [0, 0, 200, 100]])


@pytest.mark.parametrize("bad", [np.zeros((4, 4), np.uint8), np.zeros((4, 4, 3), np.float32), [1, 2]])
def test_bad_images(bad):
    with pytest.raises(DeployError):
        letterbox(bad, (64, 64), (0, 0, 0))


def test_cli_help_and_demo_bad_model(tmp_path):
    """The demo itself is the pipeline (tested end to end in test_tools.py); here: help and bad input."""
    out = subprocess.run([sys.executable, "-m", "effdet_deploy", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "demo" in out.stdout and "pipeline" in out.stdout
    out = subprocess.run([sys.executable, "-m", "effdet_deploy", "demo", "--model", "d9", "--output",
                          str(tmp_path / "demo")], capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "unknown model 'd9'" in out.stderr
    assert not (tmp_path / "demo").exists()          # failed before writing: the folder it made is gone


def test_failed_compare_leaves_no_output_folder(tmp_path):
    out = subprocess.run([sys.executable, "-m", "effdet_deploy", "compare", "--reference", tmp_path / "missing.onnx",
                          "--target", tmp_path / "missing.onnx", "--output", tmp_path / "cmp"], capture_output=True,
                         text=True)
    assert out.returncode == 2 and "missing.onnx: file not found" in out.stderr
    assert not (tmp_path / "cmp").exists()


def test_pil_images_of_any_mode_become_rgb():
    from PIL import Image

    from runtime.letterbox import check_image

    deep = check_image(Image.fromarray(np.full((20, 30), 65535, np.uint16)))      # 16-bit: scaled, not clipped
    assert deep.shape == (20, 30, 3) and deep.dtype == np.uint8 and int(deep.max()) == 255
    rgba = check_image(Image.new("RGBA", (5, 4), (10, 20, 30, 0)))                 # alpha dropped
    assert rgba.shape == (4, 5, 3) and rgba[0, 0].tolist() == [10, 20, 30]
