"""Training checkpoints carry architecture, image size and class names (issue 13.6); create_model, export,
the Detector's PyTorch backend, the pipeline and `info` use them without being told again."""
import fractions
from pathlib import Path

import onnx
import pytest
import torch

from effdet import create_model
from effdet.checkpoint import CheckpointFacts, checkpoint_facts
from effdet.synthetic import CLASS_NAMES
from effdet.train import WeightEMA, save_checkpoint
from effdet.train_settings import TrainSettings
from effdet_deploy.info import describe
from runtime.detector import Detector
from runtime.errors import DeployError


def _training_checkpoint(tmp: Path) -> Path:
    torch.manual_seed(0)
    model = create_model("tf_efficientdet_d0", num_classes=len(CLASS_NAMES), image_size=160)
    path = tmp / "last.pth"
    save_checkpoint(path, model, WeightEMA(model, 0.9), 1, TrainSettings(image_size=160))
    return path


def test_checkpoint_records_and_consumers_use_size_and_names(tmp_path):
    path = _training_checkpoint(tmp_path)
    facts = checkpoint_facts(path)
    assert facts == CheckpointFacts("tf_efficientdet_d0", (160, 160), tuple(CLASS_NAMES))
    model = create_model("tf_efficientdet_d0", checkpoint=path)
    assert model.config.image_size == (160, 160) and model.config.class_names == tuple(CLASS_NAMES)
    with Detector(path, backend="torch") as det:                   # architecture from the checkpoint too
        assert det.info.image_size == (160, 160) and det.info.class_names == tuple(CLASS_NAMES)
    checkpoint = dict(describe(str(path)))["checkpoint"]
    assert ("image size", "160x160 (HxW)") in checkpoint


def test_export_and_pipeline_use_the_checkpoint(tmp_path):
    from effdet_deploy.pipeline import PipelineSettings, Run, export_artifacts

    path = _training_checkpoint(tmp_path)
    run = Run(PipelineSettings(model="tf_efficientdet_d0", output=tmp_path, checkpoint=path), reference=str(path))
    export_artifacts(run)
    meta = {p.key: p.value for p in onnx.load(str(run.artifacts["fp32"]), load_external_data=False).metadata_props}
    assert meta["image_size"] == "160,160" and meta["class_names"] == '["' + '", "'.join(CLASS_NAMES) + '"]'


def test_plain_state_dict_has_no_facts(tmp_path):
    torch.save(create_model("tf_efficientdet_d0", image_size=128).state_dict(), tmp_path / "plain.pth")
    assert checkpoint_facts(tmp_path / "plain.pth") == CheckpointFacts()
    assert create_model("tf_efficientdet_d0", checkpoint=tmp_path / "plain.pth").config.image_size == (512, 512)


def test_unreadable_checkpoints_say_why(tmp_path):
    """One line with the reason torch's weights-only loader found, never its advice to load unsafely; the
    PyTorch backend reports the same instead of asking for the architecture of a file it could not read."""
    (tmp_path / "garbage.pth").write_bytes(b"not a checkpoint")
    torch.save({"w": torch.zeros(1), "ratio": fractions.Fraction(1, 2)}, tmp_path / "objects.pth")
    (tmp_path / "empty.pth").write_bytes(b"")
    (tmp_path / "text.pth").write_text("hi")          # torch.load raised KeyError here, not an unpickling error
    cases = {"garbage.pth": "unpickling stopped: Unsupported operand", "objects.pth": "weights-only load refuses: "
             "Unsupported global: GLOBAL fractions.Fraction", "empty.pth": r"\(the file is empty\)",
             "text.pth": "corrupt, or not a PyTorch file"}
    for name, reason in cases.items():
        with pytest.raises(DeployError, match=f"{name}: not a readable PyTorch checkpoint .*{reason}") as err:
            checkpoint_facts(tmp_path / name)
        assert "weights_only" not in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(DeployError, match="garbage.pth: not a readable PyTorch checkpoint"):
        Detector(tmp_path / "garbage.pth", backend="torch")
