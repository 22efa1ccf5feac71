"""`effdet-deploy info` (issue 13.10): multiply-adds reproduce the paper's Table 1, counted on the meta device
exactly as on a real forward pass; ONNX files, engines (sidecar) and model names are described."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from effdet import create_model
from effdet.flops import PAPER_FLOPS, count_macs, model_cost
from effdet_deploy.info import describe, format_sections
from export.onnx_export import export_onnx
from export.settings import ExportSettings
from runtime.engine_sidecar import write_sidecar
from runtime.errors import DeployError

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", list(PAPER_FLOPS))
def test_macs_reproduce_the_paper_table(name):
    cost = model_cost(name)
    assert cost.macs == pytest.approx(PAPER_FLOPS[name], rel=0.05), (name, cost.macs / 1e9)


def test_meta_device_count_equals_a_real_forward_pass():
    torch.manual_seed(0)
    model = create_model("tf_efficientdet_d0")
    real = count_macs(model, (256, 192), device="cpu")
    meta = model_cost("tf_efficientdet_d0", (256, 192))
    assert meta.macs == real and real > 0
    assert meta.parameters == sum(p.numel() for p in model.parameters())
    assert model_cost("d0").macs > 3 * meta.macs               # 512x512 vs 256x192: ~5.3x the pixels


def test_info_of_a_model_name_cli():
    r = subprocess.run([sys.executable, "-m", "effdet_deploy", "info", "d0", "--json"], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["model"]["name"] == "tf_efficientdet_d0" and data["model"]["backbone"] == "efficientnet_b0"
    assert "paper Table 1: 2.5 B" in data["cost"]["multiply-adds at 512x512 (HxW)"]


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("info")
    return export_onnx(ExportSettings(model="shapes_d0", output=tmp / "s.onnx", image_size=(128, 128), nms="efficient",
                                      dynamic_batch=(1, 2, 4), score_threshold=0.2))


def test_info_of_an_onnx_file(onnx_file):
    sections = dict(describe(str(onnx_file)))
    contract, trt, file = dict(sections["contract"]), dict(sections["TensorRT"]), dict(sections["file"])
    assert contract["image size"].startswith("128x128") and contract["classes"].startswith("6: circle")
    assert contract["batch"].startswith("1..4") and contract["NMS"] == "EfficientNMS_TRT plugin"
    assert "score >= 0.2" in contract["NMS thresholds"] and "pre-NMS top-k" in contract["NMS thresholds"]
    assert "output detection_boxes" in contract and file["opset"] == "17"
    assert trt["TensorRT 8.6+ parser"].startswith("parses") and trt["min_tensorrt (metadata)"] == "8.6"


def test_info_of_a_raw_output_file_shows_the_thresholds_the_runtime_applies(tmp_path):
    raw = export_onnx(ExportSettings(model="shapes_d0", output=tmp_path / "raw.onnx", image_size=(128, 128), nms="none",
                                     score_threshold=0.25, iou_threshold=0.6))
    contract = dict(dict(describe(str(raw)))["contract"])
    assert contract["NMS"] == "none (raw outputs)"
    thresholds = contract["NMS thresholds"]
    assert thresholds.startswith("score >= 0.25, IoU 0.6") and "runtime's numpy NMS" in thresholds


def test_info_of_an_engine_shows_its_sidecar(onnx_file, tmp_path):
    import onnx

    engine = tmp_path / "m.engine"
    engine.write_bytes(b"not a real plan")
    meta = {p.key: p.value for p in onnx.load(str(onnx_file), load_external_data=False).metadata_props}
    write_sidecar(engine, {"tensorrt_version": "10.13.0.35", "gpu_name": "NVIDIA H100", "compute_capability": "9.0",
                           "precision": "fp16", "onnx_metadata": meta, "hardware_compatible": True})
    text = format_sections(describe(str(engine)))
    assert "10.13.0.35" in text and "NVIDIA H100" in text and "128x128" in text
    assert "hardware" not in text          # the runtime ignores such a key (the GPU must match): info must not show it
    with pytest.raises(Exception, match="no m2.engine.json"):
        (tmp_path / "m2.engine").write_bytes(b"x")
        describe(str(tmp_path / "m2.engine"))


def test_info_refuses_an_engine_its_sidecar_does_not_vouch_for(onnx_file, tmp_path):
    """A sidecar that is not build's or an engine changed since its build is one error line, not a description."""
    import json

    import onnx

    engine = tmp_path / "m.engine"
    engine.write_bytes(b"plan-bytes")
    side = tmp_path / "m.engine.json"
    for text, message in (("{}", "lacks 'tensorrt_version', 'onnx_metadata', 'engine_bytes'"),
                          ("[1]", "a JSON list, not an object"), ("{", "unreadable engine sidecar")):
        side.write_text(text)
        with pytest.raises(DeployError, match=message):
            describe(str(engine))
    meta = {p.key: p.value for p in onnx.load(str(onnx_file), load_external_data=False).metadata_props}
    write_sidecar(engine, {"tensorrt_version": "10.13.0.35", "onnx_metadata": meta})
    describe(str(engine))                                                   # as built: described
    engine.write_bytes(b"plan-byte")
    with pytest.raises(DeployError, match="9 bytes but built as 10: truncated or replaced"):
        describe(str(engine))
    engine.write_bytes(b"PLAN-bytes")
    with pytest.raises(DeployError, match="sha256 differs"):
        describe(str(engine))
    side.write_text(json.dumps({**json.loads(side.read_text()), "onnx_metadata": "x"}))
    with pytest.raises(DeployError, match="onnx_metadata is not an object"):
        describe(str(engine))


def test_info_refuses_image_size_for_a_file(onnx_file):
    """--image-size counts a model name's multiply-adds; for a file it was silently ignored."""
    with pytest.raises(DeployError, match="--image-size applies to model names"):
        describe(str(onnx_file), "640")
    assert dict(describe("d0", "640"))["cost"]


def test_int8_precision_line_says_form_calibration_and_exclusions():
    from effdet_deploy.info import _precision
    from runtime.model_info import ModelInfo

    meta = {"model": "shapes_d0", "image_size": "256,256", "mean": "[0, 0, 0]", "std": "[1, 1, 1]", "num_classes": "6",
            "precision": "int8", "qdq_form": "fp32-opset17", "calibration_method": "mixed", "calibration_images": "64",
            "exclude": "default", "excluded_nodes": json.dumps(["a", "b", "c"])}
    line = _precision(ModelInfo.from_metadata(meta, "x.onnx"))
    assert line == ("int8, TensorRT 8.6 form (fp32-opset17), mixed calibration on 64 images, 3 nodes kept out of "
                    "INT8 (--exclude default)")
    assert _precision(ModelInfo.from_metadata({**meta, "precision": "fp16"}, "x.onnx")) == "fp16"
    assert _precision(ModelInfo.from_metadata({**meta, "excluded_nodes": "{bad"}, "x.onnx")).endswith("unreadable")
