"""`quantize` with default flags on the inputs users bring (issue 22): a random-weight D0 at 512 with 90 classes (its
near-silent activations once rounded to zero FP16 scales and were refused) and a uint8 NHWC export (AutoCast's
random reference input once crashed on uint8). Both precisions, both INT8 forms; each file is the form TensorRT
fuses (no Cast next to a Q/DQ, every quantized Conv reads a DQ directly), ONNX-checker and lint clean for its
min_tensorrt, and runs in the Detector. Integration tier (`make test-integration`): D0 at 512 calibrates for minutes."""
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from calibration.artifacts import QuantizeSettings, quantize_onnx
from calibration.ranges import FP16_MIN_SCALE
from export.lint import lint
from export.onnx_export import export_onnx
from export.qdq_graph import qdq_adjacent_casts, quantized_convs
from export.settings import ExportSettings
from optional_deps import require_modelopt
from quantize_helpers import calibration_folder
from runtime.detector import Detector
from effdet.synthetic import render

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def quantize_all(fp32: Path, calib: Path, images: int) -> dict[str, Path]:
    """Default FP16 and INT8 (both forms, one calibration) of `fp32`."""
    stem = fp32.with_suffix("")
    trt86 = Path(f"{stem}.int8.trt86.onnx")
    int8 = quantize_onnx(QuantizeSettings(fp32, Path(f"{stem}.int8.onnx"), precision="int8", calib_dir=calib,
                                          calib_images=images, extra_forms=(("8.6", trt86),)))
    return {"fp16": quantize_onnx(QuantizeSettings(fp32, Path(f"{stem}.fp16.onnx"))), "int8": int8, "int8-trt86": trt86}


def assert_deployable(files: dict[str, Path]) -> None:
    for label, path in files.items():
        model = onnx.load(str(path))
        onnx.checker.check_model(model, full_check=True)
        assert lint(model) == [], label                       # for the file's own min_tensorrt
        if label.startswith("int8"):
            assert qdq_adjacent_casts(model) == set()
            convs = quantized_convs(model)
            print(f"{path.name}: {len(convs)} quantized convs read a DQ directly, 0 Casts next to a Q/DQ")
            assert len(convs) > 50
            scales = {n.input[1] for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")}
            values = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
            assert min(float(values[s].astype(np.float32).min()) for s in scales) >= FP16_MIN_SCALE


@pytest.fixture(scope="module")
def calib(tmp_path_factory):
    return calibration_folder(tmp_path_factory.mktemp("calib"), 8)


def test_random_weight_d0_512_with_90_classes(tmp_path, calib):
    require_modelopt()
    fp32 = export_onnx(ExportSettings(model="tf_efficientdet_d0", output=tmp_path / "d0.onnx", num_classes=90))
    files = quantize_all(fp32, calib, 8)
    assert_deployable(files)
    image = render(22, 0).image
    for path in files.values():
        with Detector(path, score_threshold=0.0) as det:
            assert det.info.num_classes == 90 and det.detect(image).boxes.shape[1] == 4


def test_uint8_nhwc_export(tmp_path, calib):
    require_modelopt()
    fp32 = export_onnx(ExportSettings(model="shapes_d0", output=tmp_path / "u8.onnx", image_size=(128, 128),
                                      input_format="nhwc", input_dtype="uint8", score_threshold=0.05))
    files = quantize_all(fp32, calib, 8)
    assert_deployable(files)
    images = [render(22, i).image for i in range(8)]
    reference = Detector(fp32, score_threshold=0.3).detect(images)
    for label, path in files.items():
        with Detector(path, score_threshold=0.3) as det:
            assert det.info.input_dtype == "uint8" and det.info.input_layout == "nhwc"
            found = det.detect(images)
        total, expected = sum(len(d) for d in found), sum(len(d) for d in reference)
        print(f"{label}: {total} detections, FP32 {expected}")
        assert expected > 0 and abs(total - expected) <= max(2, expected // 5), label


def test_onnx_nms_export_at_opset_20(tmp_path, calib):
    """ONNX's converter has no 20 -> 19 adapters: the TensorRT >= 10.0 form keeps the export's opset 20 (TensorRT
    10.x parses it), the 8.6 form is rewritten to 17; both with the --nms onnx tail (ReduceMax axes input)."""
    require_modelopt()
    fp32 = export_onnx(ExportSettings(model="shapes_d0", output=tmp_path / "o20.onnx", image_size=(128, 128),
                                      nms="onnx", opset=20, score_threshold=0.05))
    trt86 = tmp_path / "o20.int8.trt86.onnx"
    int8 = quantize_onnx(QuantizeSettings(fp32, tmp_path / "o20.int8.onnx", precision="int8", calib_dir=calib,
                                          calib_images=4, method="max", extra_forms=(("8.6", trt86),)))
    assert_deployable({"int8": int8, "int8-trt86": trt86})
    opsets = [[o.version for o in onnx.load(str(p)).opset_import if o.domain == ""] for p in (int8, trt86)]
    assert opsets == [[20], [17]]
    images = [render(22, i).image for i in range(4)]
    counts = [sum(len(d) for d in Detector(p, score_threshold=0.3).detect(images)) for p in (fp32, int8, trt86)]
    assert counts[0] > 0 and all(abs(c - counts[0]) <= 2 for c in counts[1:]), counts
