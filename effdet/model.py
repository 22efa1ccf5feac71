"""EfficientDet: backbone -> BiFPN -> class/box heads. A pure network with an explicit graph boundary:
it returns raw head tensors; anchors, decoding and NMS live in `runtime/` (numpy) and the export.
"""
from __future__ import annotations

import torch
from torch import nn

from effdet.backbone import EfficientNetFeatures
from effdet.bifpn import BiFpn
from effdet.config import ModelConfig
from effdet.head import HeadNet
from runtime.errors import DeployError


def flatten_levels(maps: list[torch.Tensor], last: int) -> torch.Tensor:
    """Per-level NCHW maps -> [B, N, last] in effdet's DetBenchPredict order (NHWC, levels concatenated)."""
    b = maps[0].shape[0]
    return torch.cat([m.permute(0, 2, 3, 1).reshape(b, -1, last) for m in maps], 1)


class EfficientDet(nn.Module):
    """`model(x)` with x [B,3,H,W] float32 normalized by the model's mean/std ->
    (cls_logits [B,N,C] raw logits, box_regression [B,N,4] raw (ty, tx, th, tw))."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone = EfficientNetFeatures(config.backbone, config.act, config.backbone_bn_eps,
                                             config.tf_padding)
        self.fpn = BiFpn(config, self.backbone.feature_channels)
        self.class_net = HeadNet(config, config.num_classes)
        self.box_net = HeadNet(config, 4)
        self.is_fused = False

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.is_fused and tuple(x.shape[-2:]) != tuple(self.config.image_size):
            raise DeployError(f"this model was fused for {self.config.image_size[0]}x{self.config.image_size[1]} "
                              f"(pads and upsample sizes are frozen), got input {x.shape[-2]}x{x.shape[-1]}: "
                              "fuse an unfused model for that size (model.fuse(image_size=...))")
        features = self.fpn(self.backbone(x))
        cls = flatten_levels(self.class_net(features), self.config.num_classes)
        box = flatten_levels(self.box_net(features), 4)
        return cls, box

    def fuse(self, image_size: tuple[int, int] | int | None = None) -> "EfficientDet":
        """Deployment form (in place, returns self): BN folded into convs, fusion weights constant,
        pads and upsample sizes frozen for `image_size` (default: the config's). Same outputs."""
        from effdet.fuse import fuse_model

        return fuse_model(self, image_size)
