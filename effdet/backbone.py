"""EfficientNet / EfficientNet-Lite feature extractor with timm's module names (`conv_stem`, `bn1`,
`blocks.{stage}.{block}.conv_dw` ...), so effdet checkpoints load with strict key matching.

Returns the stage outputs at strides 8, 16, 32 (after blocks 2, 4 and 6), as effdet's
`features_only=True, out_indices=(2, 3, 4)` backbone does.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from effdet.config import BACKBONES
from effdet.layers import BatchNormAct2d, create_conv, make_activation

# EfficientNet-B0 stages: (block type, repeats, kernel, stride, expansion, out channels).
# 'ds' = depthwise-separable, 'ir' = inverted residual (MBConv). SE ratio 0.25 (none for Lite).
B0_STAGES = [("ds", 1, 3, 1, 1, 16), ("ir", 2, 3, 2, 6, 24), ("ir", 2, 5, 2, 6, 40), ("ir", 3, 3, 2, 6, 80),
             ("ir", 3, 5, 1, 6, 112), ("ir", 4, 5, 2, 6, 192), ("ir", 1, 3, 1, 6, 320)]
FEATURE_STAGES = (2, 4, 6)


def round_channels(channels: float, multiplier: float = 1.0, divisor: int = 8) -> int:
    """timm's make_divisible(channels * multiplier): nearest multiple of 8, never below 90%."""
    v = channels * multiplier
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, reduced: int, act: str) -> None:
        super().__init__()
        self.conv_reduce = nn.Conv2d(channels, reduced, 1, bias=True)
        self.act1 = make_activation(act)
        self.conv_expand = nn.Conv2d(reduced, channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.conv_expand(self.act1(self.conv_reduce(s))))


class DepthwiseSeparableConv(nn.Module):
    """dw kxk -> BN+act -> SE -> pw 1x1 -> BN (+ skip when shapes match)."""

    def __init__(self, cin: int, cout: int, k: int, stride: int, se: bool, act: str, eps: float,
                 tf_padding: bool) -> None:
        super().__init__()
        self.has_skip = stride == 1 and cin == cout
        self.conv_dw = create_conv(cin, cin, k, stride, tf_padding=tf_padding, depthwise=True)
        self.bn1 = BatchNormAct2d(cin, eps, act)
        self.se = SqueezeExcite(cin, round(cin * 0.25), act) if se else nn.Identity()
        self.conv_pw = create_conv(cin, cout, 1, tf_padding=tf_padding)
        self.bn2 = BatchNormAct2d(cout, eps, None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv_pw(self.se(self.bn1(self.conv_dw(x)))))
        return x + y if self.has_skip else y


class InvertedResidual(nn.Module):
    """pw expand -> BN+act -> dw kxk -> BN+act -> SE -> pw project -> BN (+ skip)."""

    def __init__(self, cin: int, cout: int, k: int, stride: int, exp: int, se: bool, act: str, eps: float,
                 tf_padding: bool) -> None:
        super().__init__()
        mid = round_channels(cin * exp)
        self.has_skip = stride == 1 and cin == cout
        self.conv_pw = create_conv(cin, mid, 1, tf_padding=tf_padding)
        self.bn1 = BatchNormAct2d(mid, eps, act)
        self.conv_dw = create_conv(mid, mid, k, stride, tf_padding=tf_padding, depthwise=True)
        self.bn2 = BatchNormAct2d(mid, eps, act)
        self.se = SqueezeExcite(mid, round(mid * 0.25 / exp), act) if se else nn.Identity()
        self.conv_pwl = create_conv(mid, cout, 1, tf_padding=tf_padding)
        self.bn3 = BatchNormAct2d(cout, eps, None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv_dw(self.bn1(self.conv_pw(x))))
        y = self.bn3(self.conv_pwl(self.se(y)))
        return x + y if self.has_skip else y


class EfficientNetFeatures(nn.Module):
    """The backbone; `feature_channels` lists the channels of the three returned maps."""

    def __init__(self, name: str, act: str, eps: float, tf_padding: bool) -> None:
        super().__init__()
        spec = BACKBONES[name]
        width, depth, lite = spec["width"], spec["depth"], spec["lite"]
        stem = 32 if lite else round_channels(32, width)
        self.conv_stem = create_conv(3, stem, 3, 2, tf_padding=tf_padding)
        self.bn1 = BatchNormAct2d(stem, eps, act)
        stages, cin = [], stem
        for i, (kind, repeats, k, stride, exp, cout) in enumerate(B0_STAGES):
            fixed = lite and i in (0, len(B0_STAGES) - 1)  # Lite keeps first/last stage depth
            n = repeats if fixed else int(math.ceil(repeats * depth))
            cout = round_channels(cout, width)
            blocks = []
            for j in range(n):
                s = stride if j == 0 else 1
                if kind == "ds":
                    blocks.append(DepthwiseSeparableConv(cin, cout, k, s, not lite, act, eps, tf_padding))
                else:
                    blocks.append(InvertedResidual(cin, cout, k, s, exp, not lite, act, eps, tf_padding))
                cin = cout
            stages.append(nn.Sequential(*blocks))
        self.blocks = nn.Sequential(*stages)
        self.feature_channels = [round_channels(B0_STAGES[i][5], width) for i in FEATURE_STAGES]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.bn1(self.conv_stem(x))
        features = []
        for i, stage in enumerate(self.blocks):
            x = stage(x)
            if i in FEATURE_STAGES:
                features.append(x)
        return features
