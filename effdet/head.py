"""Class and box heads with effdet's names: shared separable convs (`conv_rep`), one BN per repeat and
level (`bn_rep.{repeat}.{level}.bn`), and a `predict` conv shared by all levels.

After fuse() the per-level BNs are folded into per-level copies of the convs (`fused_levels`).
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from effdet.bifpn import SeparableConv2d
from effdet.config import ModelConfig
from effdet.layers import make_activation


class HeadNet(nn.Module):
    """Returns one map per level: [B, anchors * num_outputs, H, W] (channel = anchor * outputs + k)."""

    def __init__(self, cfg: ModelConfig, num_outputs: int) -> None:
        super().__init__()
        self.num_levels = cfg.num_levels
        ch = cfg.fpn_channels
        self.conv_rep = nn.ModuleList([SeparableConv2d(ch, ch, cfg, bias=cfg.redundant_bias, bn=False)
                                       for _ in range(cfg.box_class_repeats)])
        self.bn_rep = nn.ModuleList([
            nn.ModuleList([nn.Sequential(OrderedDict([("bn", nn.BatchNorm2d(ch, eps=cfg.bn_eps))]))
                           for _ in range(cfg.num_levels)])
            for _ in range(cfg.box_class_repeats)])
        self.act = make_activation(cfg.act)
        self.predict = SeparableConv2d(ch, num_outputs * cfg.anchors_per_location, cfg, bias=True, bn=False)
        self.fused_levels: nn.ModuleList | None = None

    def forward(self, x: list[torch.Tensor]) -> list[torch.Tensor]:
        outputs = []
        for level in range(self.num_levels):
            y = x[level]
            if self.fused_levels is not None:
                for conv in self.fused_levels[level]:
                    y = self.act(conv(y))
            else:
                for conv, bn in zip(self.conv_rep, self.bn_rep):
                    y = self.act(bn[level](conv(y)))
            outputs.append(self.predict(y))
        return outputs
