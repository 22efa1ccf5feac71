"""BiFPN with effdet's module names (`fpn.resample.{level}`, `fpn.cell.{i}.fnode.{j}.combine...`).

Node layout (effdet `bifpn_config`): top-down nodes for levels max-1..min, each fusing the level's last
node and the next coarser one; then bottom-up nodes for levels min+1..max, fusing every node of the
level so far and the previous finer one. Inputs of a node are indexed by their position in the growing
list of nodes (backbone levels first).
"""
from __future__ import annotations

import torch
from torch import nn

from effdet.config import ModelConfig
from effdet.layers import MaxPoolDown, Upsample, create_conv, make_activation


def bifpn_nodes(min_level: int, max_level: int) -> list[tuple[int, tuple[int, ...]]]:
    """[(feature level, input node offsets)] for one BiFPN cell."""
    num_levels = max_level - min_level + 1
    ids = {min_level + i: [i] for i in range(num_levels)}
    nodes, next_id = [], num_levels
    for lv in range(max_level - 1, min_level - 1, -1):
        nodes.append((lv, (ids[lv][-1], ids[lv + 1][-1])))
        ids[lv].append(next_id)
        next_id += 1
    for lv in range(min_level + 1, max_level + 1):
        nodes.append((lv, (*ids[lv], ids[lv - 1][-1])))
        ids[lv].append(next_id)
        next_id += 1
    return nodes


class ConvBnAct2d(nn.Module):
    """1x1 conv (+ BN) used to match channels when resampling; `bn` is folded by fuse()."""

    def __init__(self, cin: int, cout: int, cfg: ModelConfig) -> None:
        super().__init__()
        self.conv = create_conv(cin, cout, 1, tf_padding=cfg.tf_padding, bias=cfg.redundant_bias)
        self.bn: nn.Module = nn.BatchNorm2d(cout, eps=cfg.bn_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class SeparableConv2d(nn.Module):
    """Depthwise 3x3 + pointwise 1x1 (+ optional BN), as effdet's BiFPN and head convs."""

    def __init__(self, cin: int, cout: int, cfg: ModelConfig, bias: bool, bn: bool) -> None:
        super().__init__()
        self.conv_dw = create_conv(cin, cin, 3, tf_padding=cfg.tf_padding, depthwise=True)
        self.conv_pw = create_conv(cin, cout, 1, tf_padding=cfg.tf_padding, bias=bias)
        self.bn: nn.Module = nn.BatchNorm2d(cout, eps=cfg.bn_eps) if bn else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv_pw(self.conv_dw(x)))


class ResampleFeatureMap(nn.Sequential):
    """Channel match (1x1 conv + BN) and/or 2x down (max pool) or up (nearest) to a target level."""

    def __init__(self, cin: int, cout: int, level_in: int, level_out: int, cfg: ModelConfig) -> None:
        super().__init__()
        if cin != cout:
            self.add_module("conv", ConvBnAct2d(cin, cout, cfg))
        if level_in < level_out:
            self.add_module("downsample", MaxPoolDown(cfg.tf_padding))
        elif level_in > level_out:
            self.add_module("upsample", Upsample())

    def forward(self, x: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:  # type: ignore[override]
        for name, module in self.named_children():
            x = module(x, size) if name == "upsample" else module(x)
        return x


class FpnCombine(nn.Module):
    """Resample the inputs of a node to its level and fuse them: fast attention or plain sum.

    After fuse(), `edge_weights` is gone and `constant_weights` holds relu(w) / (sum + 1e-4).
    """

    def __init__(self, offsets: tuple[int, ...], channels: list[int], levels: list[int], level: int,
                 cfg: ModelConfig) -> None:
        super().__init__()
        self.offsets = offsets
        self.size_from = next(o for o in offsets if levels[o] == level)  # an input already at this level
        self.resample = nn.ModuleDict({
            str(o): ResampleFeatureMap(channels[o], cfg.fpn_channels, levels[o], level, cfg) for o in offsets})
        self.edge_weights = nn.Parameter(torch.ones(len(offsets))) if cfg.fusion == "fastattn" else None
        self.constant_weights: list[float] | None = None

    def fusion_weights(self) -> list[float] | torch.Tensor | None:
        if self.constant_weights is not None or self.edge_weights is None:
            return self.constant_weights
        w = torch.relu(self.edge_weights)
        return w / (w.sum() + 1e-4)

    def forward(self, nodes: list[torch.Tensor]) -> torch.Tensor:
        size = (int(nodes[self.size_from].shape[-2]), int(nodes[self.size_from].shape[-1]))
        inputs = [self.resample[str(o)](nodes[o], size) for o in self.offsets]
        weights = self.fusion_weights()
        out = inputs[0] * weights[0] if weights is not None else inputs[0]
        for i in range(1, len(inputs)):
            out = out + (inputs[i] * weights[i] if weights is not None else inputs[i])
        return out


class Fnode(nn.Module):
    def __init__(self, combine: FpnCombine, after_combine: nn.Sequential) -> None:
        super().__init__()
        self.combine = combine
        self.after_combine = after_combine

    def forward(self, nodes: list[torch.Tensor]) -> torch.Tensor:
        return self.after_combine(self.combine(nodes))


class BiFpnLayer(nn.Module):
    def __init__(self, channels: list[int], cfg: ModelConfig) -> None:
        super().__init__()
        self.num_levels = cfg.num_levels
        levels = list(range(cfg.min_level, cfg.max_level + 1))
        channels = list(channels)
        self.fnode = nn.ModuleList()
        for level, offsets in bifpn_nodes(cfg.min_level, cfg.max_level):
            combine = FpnCombine(offsets, channels, levels, level, cfg)
            after = nn.Sequential()
            after.add_module("act", make_activation(cfg.act))
            after.add_module("conv", SeparableConv2d(cfg.fpn_channels, cfg.fpn_channels, cfg,
                                                     bias=cfg.redundant_bias, bn=True))
            self.fnode.append(Fnode(combine, after))
            channels.append(cfg.fpn_channels)
            levels.append(level)

    def forward(self, x: list[torch.Tensor]) -> list[torch.Tensor]:
        nodes = list(x)
        for fnode in self.fnode:
            nodes.append(fnode(nodes))
        return nodes[-self.num_levels:]


class BiFpn(nn.Module):
    """Extra levels from the last backbone map (1x1 conv + BN, max pool), then the BiFPN cells."""

    def __init__(self, cfg: ModelConfig, feature_channels: list[int]) -> None:
        super().__init__()
        self.resample = nn.ModuleDict()
        channels = list(feature_channels)
        cin = channels[-1]
        for level in range(len(feature_channels), cfg.num_levels):
            lv = cfg.min_level + level
            self.resample[str(level)] = ResampleFeatureMap(cin, cfg.fpn_channels, lv - 1, lv, cfg)
            cin = cfg.fpn_channels
            channels.append(cin)
        self.cell = nn.Sequential(*[BiFpnLayer(channels if i == 0 else [cfg.fpn_channels] * cfg.num_levels, cfg)
                                    for i in range(cfg.fpn_cell_repeats)])

    def forward(self, x: list[torch.Tensor]) -> list[torch.Tensor]:
        x = list(x)
        for resample in self.resample.values():
            x.append(resample(x[-1]))
        for cell in self.cell:
            x = cell(x)
        return x
