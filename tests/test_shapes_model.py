"""The shipped shapes_d0 detector: checksum-verified loading by name, and real accuracy on freshly
generated scenes (a smaller set than the README's 300, so make test stays fast)."""
import hashlib
import shutil

import pytest
import torch

import effdet.pretrained as pretrained
from effdet import create_model
from effdet.synthetic import evaluate_on_synthetic
from runtime.detector import Detector
from runtime.errors import DeployError
from optional_deps import needs_pycocotools

pytestmark = pytest.mark.slow


def test_loads_by_name_with_checksum():
    path = pretrained.pretrained_path("shapes_d0")
    assert path.stat().st_size <= 16 * 2**20
    assert hashlib.sha256(path.read_bytes()).hexdigest() == pretrained.PRETRAINED["shapes_d0"][1]
    model = create_model("shapes_d0")
    assert model.config.num_classes == 6 and model.config.class_names[3] == "star"
    state = torch.load(path, weights_only=True)
    assert torch.equal(model.state_dict()["class_net.predict.conv_pw.bias"], state["class_net.predict.conv_pw.bias"].float())


def test_damaged_weights_are_refused(tmp_path, monkeypatch):
    name, digest = pretrained.PRETRAINED["shapes_d0"]
    damaged = tmp_path / name
    shutil.copyfile(pretrained.WEIGHTS_DIR / name, damaged)
    with open(damaged, "r+b") as f:
        f.seek(5000)
        f.write(b"\x00\x01\x02\x03")
    monkeypatch.setattr(pretrained, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(DeployError, match="checksum mismatch"):
        create_model("shapes_d0")
    with pytest.raises(DeployError, match="no shipped weights for 'tf_efficientdet_d0'"):
        pretrained.pretrained_path("tf_efficientdet_d0")


@needs_pycocotools
def test_shipped_model_accuracy_on_fresh_scenes():
    det = Detector("shapes_d0", score_threshold=0.0)  # PyTorch backend, shipped weights; mAP: every detection
    metrics = evaluate_on_synthetic(det.detect, images=60, seed=1234)
    print("shapes_d0 on 60 fresh scenes: " + ", ".join(f"{k} {v:.3f}" for k, v in metrics.items()))
    assert metrics["AP"] >= 0.45 and metrics["AP50"] >= 0.7
