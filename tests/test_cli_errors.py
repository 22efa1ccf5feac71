"""Bad input gives one line on stderr and exit 2 (DESIGN section 4), never a traceback: one test per case,
through the real command line (a subprocess), plus the two Python-API cases (PIL images are accepted;
a fused model run at another size says so)."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper
from PIL import Image

from effdet import create_model
from export.onnx_export import export_onnx
from export.settings import ExportSettings
from runtime import Detector
from runtime.errors import DeployError
from runtime.image_io import read_image

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "effdet_deploy" / "assets" / "demo.jpg"


def run(*args, module="effdet_deploy"):
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def one_line_error(out, *fragments):
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2, out.stdout + out.stderr
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def test_bench_cuda_graph_on_an_onnx_file(tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"not loaded: the flag is refused first")
    one_line_error(run("bench", "--model", model, "--use-cuda-graph"), "--use-cuda-graph needs a TensorRT engine")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the case needs a PyTorch without it")
def test_infer_cuda_on_pytorch_without_cuda(tmp_path):
    out = run("infer", "--model", "shapes_d0", "--device", "cuda", "--input", DEMO, "--output", tmp_path / "out")
    one_line_error(out, "device 'cuda'", "no usable CUDA", "--device cpu")
    assert not (tmp_path / "out").exists()


def test_infer_unknown_device(tmp_path):
    out = run("infer", "--model", "shapes_d0", "--device", "gpu0", "--input", DEMO, "--output", tmp_path / "out")
    one_line_error(out, "device 'gpu0' is not a PyTorch device")


def test_lint_on_a_file_that_is_not_onnx():
    one_line_error(run("README.md", module="export.lint"), "README.md: not a readable ONNX file")
    one_line_error(run("lint", "README.md"), "effdet-deploy lint: error: README.md: not a readable ONNX file")
    one_line_error(run("lint", "missing.onnx"), "missing.onnx: file not found")


def test_lint_version_errors_name_their_source(tmp_path):
    """An unknown --trt-version names the flag; an unreadable min_tensorrt in the file names the metadata."""
    path = tmp_path / "m.onnx"
    model = helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                                                [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                                                [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])]),
                              opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, path)
    one_line_error(run("lint", path, "--trt-version", "7.2"), "--trt-version: TensorRT 7.2 is older than")
    helper.set_model_props(model, {"min_tensorrt": "ten"})
    onnx.save(model, path)
    one_line_error(run("lint", path), "m.onnx: metadata min_tensorrt: TensorRT version 'ten' is not MAJOR.MINOR")


def test_detect_accepts_pil_images():
    image = read_image(DEMO)
    with Detector("shapes_d0") as det:
        from_array = det.detect(image)
        from_pil = det.detect(Image.fromarray(image).convert("RGBA"))   # any mode: converted to RGB
        in_list = det.detect([Image.fromarray(image)])
        with pytest.raises(DeployError, match="numpy array HxWx3 uint8 RGB or a PIL image"):
            det.detect("photo.jpg")
    assert len(from_array) > 0
    np.testing.assert_array_equal(from_pil.boxes, from_array.boxes)
    np.testing.assert_array_equal(in_list[0].scores, from_array.scores)


def test_fused_model_at_another_size():
    model = create_model("shapes_d0").fuse()          # pads and upsample sizes frozen for 256x256
    with pytest.raises(DeployError) as err, torch.no_grad():
        model(torch.zeros(1, 3, 320, 320))
    assert "fused for 256x256" in str(err.value) and "320x320" in str(err.value) and "\n" not in str(err.value)


def test_export_opset_7(tmp_path):
    out = run("export", "--model", "shapes_d0", "--output", tmp_path / "m.onnx", "--opset", "7")
    one_line_error(out, "--opset must be 13..20, got 7")
    assert not list(tmp_path.iterdir())


def test_bench_zero_iterations(tmp_path):
    one_line_error(run("bench", "--model", "shapes_d0", "--iterations", "0"), "--iterations must be >= 1")


def test_export_output_is_an_existing_folder(tmp_path):
    one_line_error(run("export", "--model", "shapes_d0", "--output", tmp_path), "is a folder", "model.onnx")


@pytest.mark.parametrize("flags, fragment", [
    (("--score-threshold", "1.5"), "score threshold (--score-threshold, score_threshold) must be in [0, 1], got 1.5"),
    (("--iou", "-0.2"), "IoU threshold (--iou-threshold, iou_threshold) must be in [0, 1], got -0.2"),
    (("--max-det", "0"), "max detections (--max-detections, max_detections) must be an integer >= 1, got 0"),
])
def test_infer_range_checks(tmp_path, flags, fragment):
    out = run("infer", "--model", "shapes_d0", "--input", DEMO, "--output", tmp_path / "out", *flags)
    one_line_error(out, fragment)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("flags, fragment", [
    (("--iou-threshold", "1.2"), "IoU threshold (--iou-threshold, iou_threshold) must be in [0, 1], got 1.2"),
    (("--score-threshold", "-1"), "score threshold (--score-threshold, score_threshold) must be in [0, 1], got -1"),
    (("--max-detections", "0"), "--max-detections must be >= 1"),
    (("--class-names", "circle,square"), "--class-names gives 2 names, the model has 6 classes"),
    (("--class-names", "a,,b,c,d,e"), "--class-names has an empty name"),
    (("--num-classes", "-1"), "--num-classes must be at least 1, got -1"),           # was a RuntimeError
    (("--num-classes", "0"), "--num-classes must be at least 1, got 0"),             # was the default, silently
    (("--max-detections", "5000"), "--max-detections must be <= 4096 for --nms efficient"),   # was the lint, late
    (("--image-size", "100000"), "at most 4096 per side"),                           # was a memory error
])
def test_export_range_checks(tmp_path, flags, fragment):
    one_line_error(run("export", "--model", "shapes_d0", "--output", tmp_path / "m.onnx", *flags), fragment)
    assert not list(tmp_path.iterdir())


def test_usage_errors_are_one_line():
    one_line_error(run("infer", "--model", "shapes_d0"), "required: --input", "see effdet-deploy infer --help")
    one_line_error(run("bench", "--model", "shapes_d0", "--iterations", "many"), "invalid int value: 'many'")


def test_quantize_refuses_to_overwrite_its_input_and_keeps_an_old_log(tmp_path):
    """--output equal to --onnx would replace the FP32 export by its FP16 copy: refused, the input untouched;
    bad input is found before OUT.log is opened, so the log of an earlier run is kept as it was."""
    model = tmp_path / "m.onnx"
    model.write_bytes(b"stand-in: refused before it is read")
    one_line_error(run("quantize", "--onnx", model, "--output", model, "--precision", "fp16"),
                   "m.onnx: --output is the --onnx input")
    assert model.read_bytes() == b"stand-in: refused before it is read"
    (tmp_path / "q.log").write_text("the earlier run's log")
    (tmp_path / "calib").mkdir()
    one_line_error(run("quantize", "--onnx", model, "--output", tmp_path / "q.onnx", "--precision", "int8",
                       "--calib-dir", tmp_path / "calib"), "calib: no images found")
    assert (tmp_path / "q.log").read_text() == "the earlier run's log"
    for image in range(3):
        (tmp_path / "calib" / f"{image}.png").write_bytes(b"counted by name here")
    real = export_onnx(ExportSettings(model="shapes_d0", output=tmp_path / "real.onnx", image_size=(128, 128)))
    for flags, fragment in ((("--exclude", "auto"), "--exclude auto needs at least 32 calibration images"),
                            (("--exclude", "no_such_node"), "--exclude names nodes that are not in the file")):
        one_line_error(run("quantize", "--onnx", real, "--output", tmp_path / "q.onnx", "--precision", "int8",
                           "--calib-dir", tmp_path / "calib", *flags), fragment)
        assert (tmp_path / "q.log").read_text() == "the earlier run's log"


@pytest.mark.parametrize("command", [("build", "--onnx"), ("info",), ("lint",),
                                     ("quantize", "--precision", "fp16", "--onnx")])
def test_an_empty_onnx_file_and_a_folder_named_onnx(tmp_path, command):
    """An empty file parses as an empty ModelProto (build raised IndexError); a folder was 'file not found'."""
    (tmp_path / "empty.onnx").write_bytes(b"")
    (tmp_path / "dir.onnx").mkdir()
    extra = ("--output", tmp_path / "q.onnx") if command[0] == "quantize" else ()
    one_line_error(run(*command, tmp_path / "empty.onnx", *extra), "empty.onnx: not an ONNX model (no graph")
    one_line_error(run(*command, tmp_path / "dir.onnx", *extra), "dir.onnx: is a folder, not an ONNX file")


@pytest.mark.parametrize("flags, fragment", [
    (("--max-images", "0"), "--max-images must be at least 1, got 0"),      # was: one image, silently
    (("--atol", "-1"), "--atol must be a finite number >= 0, got -1.0"),     # was: FAIL
    (("--rtol", "nan"), "--rtol must be a finite number >= 0, got nan"),     # was: accepted
    (("--target", "missing.onnx"), "missing.onnx: file not found"),
])
def test_compare_flags_are_checked_before_the_banner(tmp_path, flags, fragment):
    target = tmp_path / "t.onnx"
    target.write_bytes(b"not read: the flags are refused first")
    out = run("compare", "--reference", "shapes_d0", "--target", target, *flags, "--output", tmp_path / "out")
    one_line_error(out, fragment)
    assert out.stdout == "" and not (tmp_path / "out").exists()


def test_infer_checks_annotations_and_class_map_before_loading_the_model(tmp_path):
    (tmp_path / "bad.json").write_text('{"images": "x"}')
    missing_model = tmp_path / "not_loaded.onnx"                 # the model would fail: it is never reached
    one_line_error(run("infer", "--model", missing_model, "--input", DEMO, "--output", tmp_path / "o",
                       "--annotations", tmp_path / "bad.json"), "bad.json: not COCO format")
    one_line_error(run("infer", "--model", missing_model, "--input", DEMO, "--output", tmp_path / "o",
                       "--class-map", "id"), "--class-map applies to --annotations")
    assert not (tmp_path / "o").exists()


def test_quantize_fp16_refuses_int8_flags(tmp_path):
    """--calib-dir / --method / --exclude with --precision fp16 were ignored without a word."""
    one_line_error(run("quantize", "--onnx", tmp_path / "m.onnx", "--output", tmp_path / "q.onnx", "--precision",
                       "fp16", "--calib-dir", tmp_path, "--method", "max"),
                   "--calib-dir, --method: INT8 calibration flags, not used by --precision fp16")
