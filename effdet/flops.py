"""Parameters and multiply-adds of an EfficientDet at a given input size, counted from module shapes.

Forward hooks on every Conv2d/Linear record output shapes during one forward pass on PyTorch's `meta`
device (shapes only, no arithmetic, no memory), so D7x at 1536 costs milliseconds. MACs of a convolution
= output elements x (input channels / groups) x kernel area; elementwise ops (BN, activations, fusion
weights, padding) are not counted, as in the paper's FLOPs (EfficientDet Table 1 counts multiply-adds).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

# EfficientDet paper (Tan, Pang, Le, CVPR 2020) Table 1: FLOPs (multiply-adds) at each model's native size.
PAPER_FLOPS: dict[str, float] = {
    "tf_efficientdet_d0": 2.5e9, "tf_efficientdet_d1": 6.1e9, "tf_efficientdet_d2": 11e9,
    "tf_efficientdet_d3": 25e9, "tf_efficientdet_d4": 55e9, "tf_efficientdet_d5": 135e9,
    "tf_efficientdet_d6": 226e9, "tf_efficientdet_d7": 325e9, "tf_efficientdet_d7x": 410e9,
}


@dataclass(frozen=True)
class ModelCost:
    parameters: int
    macs: int                 # multiply-adds for one image
    image_size: tuple[int, int]


def _macs_hook(total: list[int]) -> Any:
    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        per_image = output.numel() // output.shape[0]
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            total[0] += per_image * (module.in_channels // module.groups) * kh * kw
        elif isinstance(module, nn.Linear):
            total[0] += per_image * module.in_features
    return hook


def count_macs(model: nn.Module, image_size: tuple[int, int], device: str = "meta") -> int:
    """Multiply-adds of one forward pass of a [1,3,H,W] input, counted by hooks on `device`."""
    total = [0]
    handles = [m.register_forward_hook(_macs_hook(total)) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            model(torch.zeros((1, 3, *image_size), device=device))
    finally:
        for h in handles:
            h.remove()
    return total[0]


def model_cost(name: str, image_size: Any = None) -> ModelCost:
    """Parameters and MACs of model `name` (default: its native size), built on the meta device."""
    from effdet.config import get_config
    from effdet.model import EfficientDet

    config = get_config(name, **({"image_size": image_size} if image_size is not None else {}))
    with torch.device("meta"):
        model = EfficientDet(config).eval()
    params = sum(p.numel() for p in model.parameters())
    return ModelCost(params, count_macs(model, config.image_size), config.image_size)
