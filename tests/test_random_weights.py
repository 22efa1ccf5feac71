"""Random weights are loud (issue 25): an export without a checkpoint or shipped weights warns, records
`weights: random` in its metadata, and every load of it (infer, compare, eval, pipeline: the Detector) and `info` say
so; the shipped detector's file says `shipped` and loads quietly."""
import logging

import onnx

from effdet_deploy.info import describe, format_sections
from export.onnx_export import export_onnx
from export.settings import ExportSettings
from runtime.detector import Detector


def test_random_weights_are_recorded_and_reported(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    random = export_onnx(ExportSettings(model="d0", output=tmp_path / "r.onnx", image_size=(128, 128), nms="none"))
    assert any("RANDOM weights" in r.getMessage() for r in caplog.records)
    assert {p.key: p.value for p in onnx.load(str(random)).metadata_props}["weights"] == "random"
    caplog.clear()
    Detector(random)
    assert [r.getMessage() for r in caplog.records if "RANDOM" in r.getMessage()]
    assert "RANDOM (exported without a checkpoint)" in format_sections(describe(str(random)))


def test_shipped_weights_load_quietly(tmp_path, caplog):
    shipped = export_onnx(ExportSettings(model="shapes_d0", output=tmp_path / "s.onnx", image_size=(128, 128),
                                         nms="none"))
    assert {p.key: p.value for p in onnx.load(str(shipped)).metadata_props}["weights"] == "shipped"
    caplog.set_level(logging.WARNING)
    Detector(shipped)
    assert not [r for r in caplog.records if "RANDOM" in r.getMessage()]
    assert "RANDOM" not in format_sections(describe(str(shipped)))
