"""`model.fuse()`: the deployment form of EfficientDet.

- BatchNorm folded into the conv before it (backbone, BiFPN, resampling, and the heads' per-level BNs,
  which gives each level its own copy of the shared head convs);
- BiFPN fast-attention weights relu(w) / (sum + 1e-4) evaluated once and kept as Python constants;
- TF SAME pads and upsample sizes frozen for one input size, so the exported graph has no shape math.
The outputs are those of the unfused model up to float rounding.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from effdet.backbone import DepthwiseSeparableConv, EfficientNetFeatures, InvertedResidual
from effdet.bifpn import ConvBnAct2d, FpnCombine, SeparableConv2d
from effdet.config import parse_image_size
from effdet.head import HeadNet
from effdet.layers import BatchNormAct2d, SamePad, Upsample


@torch.no_grad()
def fold_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    """conv <- bn(conv(x)) in place: weights scaled per output channel, bias absorbed."""
    d = torch.float64  # fold in double so the fused model adds as little rounding as possible
    scale = bn.weight.to(d) / torch.sqrt(bn.running_var.to(d) + bn.eps)
    conv.weight.copy_((conv.weight.to(d) * scale.reshape(-1, 1, 1, 1)).to(conv.weight.dtype))
    bias = conv.bias.to(d) if conv.bias is not None else torch.zeros_like(scale)
    new_bias = (bias - bn.running_mean.to(d)) * scale + bn.bias.to(d)
    conv.bias = nn.Parameter(new_bias.to(conv.weight.dtype))


def _fold_act(conv: nn.Conv2d, bn: BatchNormAct2d) -> nn.Module:
    fold_bn(conv, bn)
    return bn.act


def _fuse_backbone(backbone: EfficientNetFeatures) -> None:
    backbone.bn1 = _fold_act(backbone.conv_stem, backbone.bn1)  # type: ignore[assignment]
    for block in backbone.modules():
        if isinstance(block, DepthwiseSeparableConv):
            block.bn1 = _fold_act(block.conv_dw, block.bn1)  # type: ignore[assignment]
            block.bn2 = _fold_act(block.conv_pw, block.bn2)  # type: ignore[assignment]
        elif isinstance(block, InvertedResidual):
            block.bn1 = _fold_act(block.conv_pw, block.bn1)  # type: ignore[assignment]
            block.bn2 = _fold_act(block.conv_dw, block.bn2)  # type: ignore[assignment]
            block.bn3 = _fold_act(block.conv_pwl, block.bn3)  # type: ignore[assignment]


def _fuse_fpn(fpn: nn.Module) -> None:
    for module in fpn.modules():
        if isinstance(module, ConvBnAct2d) and isinstance(module.bn, nn.BatchNorm2d):
            fold_bn(module.conv, module.bn)
            module.bn = nn.Identity()
        elif isinstance(module, SeparableConv2d) and isinstance(module.bn, nn.BatchNorm2d):
            fold_bn(module.conv_pw, module.bn)
            module.bn = nn.Identity()
        elif isinstance(module, FpnCombine) and module.edge_weights is not None:
            module.constant_weights = [float(w) for w in module.fusion_weights().detach()]  # type: ignore[union-attr]
            module.edge_weights = None


def _fuse_head(head: HeadNet) -> None:
    levels = nn.ModuleList()
    for level in range(head.num_levels):
        convs = nn.ModuleList()
        for conv, bn in zip(head.conv_rep, head.bn_rep):
            c = copy.deepcopy(conv)
            fold_bn(c.conv_pw, bn[level].bn)
            convs.append(c)
        levels.append(convs)
    head.fused_levels = levels
    head.conv_rep = nn.ModuleList()
    head.bn_rep = nn.ModuleList()


@torch.no_grad()
def freeze_sizes(model: nn.Module, image_size: tuple[int, int]) -> None:
    """Run once at `image_size` and freeze every SAME pad and upsample size seen on the way."""
    seen: dict[nn.Module, tuple] = {}

    def record(module: nn.Module, args: tuple) -> None:
        key = (int(args[0].shape[-2]), int(args[0].shape[-1])) if isinstance(module, SamePad) else tuple(args[1])
        if seen.setdefault(module, key) != key:
            raise RuntimeError(f"{type(module).__name__} used at two sizes; cannot freeze")

    hooks = [m.register_forward_pre_hook(record) for m in model.modules() if isinstance(m, (SamePad, Upsample))]
    try:
        model(torch.zeros(1, 3, *image_size, dtype=next(model.parameters()).dtype))
    finally:
        for h in hooks:
            h.remove()
    for module, key in seen.items():
        if isinstance(module, SamePad):
            module.freeze(*key)
        else:
            module.frozen = (int(key[0]), int(key[1]))  # type: ignore[assignment]


def fuse_model(model, image_size=None):  # type: ignore[no-untyped-def]
    """See module docstring. In place; returns the model in eval mode."""
    if model.is_fused:
        raise RuntimeError("model is already fused")
    model.eval()
    size = parse_image_size(image_size) if image_size is not None else model.config.image_size
    _fuse_backbone(model.backbone)
    _fuse_fpn(model.fpn)
    _fuse_head(model.class_net)
    _fuse_head(model.box_net)
    freeze_sizes(model, size)
    model.config = model.config.with_overrides(image_size=size)
    model.is_fused = True
    return model
