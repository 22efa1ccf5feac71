import json

import pytest
import torch

from effdet import create_model, get_config, list_models
from reference import FIXTURES
from runtime.errors import DeployError

PUBLISHED_M = {"tf_efficientdet_d0": 3.88, "tf_efficientdet_d1": 6.63, "tf_efficientdet_d2": 8.10,
               "tf_efficientdet_d3": 12.0, "tf_efficientdet_d4": 20.7, "tf_efficientdet_d5": 33.7,
               "tf_efficientdet_d6": 51.9, "tf_efficientdet_d7": 51.9, "tf_efficientdet_d7x": 77.1,
               "efficientdet_d0": 3.88, "tf_efficientdet_lite0": 3.24, "tf_efficientdet_lite4": 15.1}
MEASURED = json.loads((FIXTURES / "effdet_param_counts.json").read_text())


def count(name: str) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in create_model(name).parameters())


@pytest.mark.parametrize("name", list(MEASURED))
def test_parameter_count_equals_effdet(name):
    n = count(name)
    print(f"{name}: {n:,} parameters (effdet: {MEASURED[name]:,})")
    assert n == MEASURED[name]
    if name in PUBLISHED_M:
        assert abs(n / 1e6 - PUBLISHED_M[name]) / PUBLISHED_M[name] < 0.005


def test_table_and_aliases():
    names = list_models()
    for alias, full in [("d0", "tf_efficientdet_d0"), ("d7x", "tf_efficientdet_d7x"), ("lite3x", "tf_efficientdet_lite3x")]:
        assert alias in names and get_config(alias).name == full
    assert get_config("d7x").max_level == 8 and get_config("d7").anchor_scale == 5.0
    assert get_config("d6").fusion == "sum" and get_config("d5").fusion == "fastattn"
    lite = get_config("lite0")
    assert (lite.act, lite.fusion, lite.anchor_scale, lite.mean) == ("relu6", "sum", 3.0, (127.5,) * 3)
    assert not get_config("efficientdet_d1").tf_padding and get_config("d1").tf_padding


def test_unknown_model_and_bad_sizes():
    with pytest.raises(DeployError, match="unknown model 'd9'"):
        get_config("d9")
    for bad in (0, -64, "abc", (256, 0)):
        with pytest.raises(DeployError):
            get_config("d0", image_size=bad)
    assert get_config("d0", image_size="384,640").image_size == (384, 640)
