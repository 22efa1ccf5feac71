"""The shipped shapes_d0 detector exported as FP32 and quantized to FP16 and INT8, once per test session:
a model whose detections mean something, so precision parity is judged on real detections."""
from __future__ import annotations

from pathlib import Path

from calibration.artifacts import QuantizeSettings, quantize_onnx
from effdet.synthetic import write_dataset
from export.onnx_export import export_onnx
from export.settings import ExportSettings
from optional_deps import require_modelopt

CALIB_SEED, HOLDOUT_SEED, AP_SEED = 21, 22, 23   # none is the training (0), validation (1) or benchmark (2-7) seed
CALIB_IMAGES = 64     # the accuracy goal of issue 14 is stated for 64 calibration images
_CACHE: dict[str, dict[str, Path]] = {}


def calibration_folder(folder: Path, count: int = 32) -> Path:
    write_dataset(folder, count, CALIB_SEED, progress=False)
    return folder


def shapes_files(tmp: Path) -> dict[str, Path]:
    """{'fp32', 'fp16', 'int8' (TensorRT >= 10.0 form), 'int8-trt86', 'calib'} -> paths, for shapes_d0 at 256 with
    plugin NMS (cached per session)."""
    require_modelopt()
    if "files" in _CACHE:
        return _CACHE["files"]
    fp32 = export_onnx(ExportSettings(model="shapes_d0", output=tmp / "shapes.fp32.onnx", score_threshold=0.05))
    fp16 = quantize_onnx(QuantizeSettings(onnx=fp32, output=tmp / "shapes.fp16.onnx", precision="fp16"))
    calib = calibration_folder(tmp / "calib")                       # 32 scenes other tests read as images
    calib_int8 = calibration_folder(tmp / "calib_int8", CALIB_IMAGES)
    trt86 = tmp / "shapes.int8.trt86.onnx"      # the TensorRT 8.6 form of the same calibration
    int8 = quantize_onnx(QuantizeSettings(onnx=fp32, output=tmp / "shapes.int8.onnx", precision="int8",
                                          calib_dir=calib_int8, calib_images=CALIB_IMAGES,   # default method/exclude
                                          extra_forms=(("8.6", trt86),)))
    _CACHE["files"] = {"fp32": fp32, "fp16": fp16, "int8": int8, "int8-trt86": trt86, "calib": calib}
    return _CACHE["files"]
