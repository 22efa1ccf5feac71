"""The PyTorch module that becomes the ONNX graph: preprocessing -> fused EfficientDet -> decoding.

With NMS (`--nms efficient` or `onnx`) the tail decodes only the boxes it keeps (the plugin's fused box
decoder, box_coding 1, or export/postprocess.py's ONNX ops with the same arithmetic): the box head's output
channels are permuted once to (tx, ty, tw, th) so corners come out x1,y1,x2,y2, and this graph ends at
the raw regressions and logits. `--nms none`: all boxes are decoded here, scores get a sigmoid.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from effdet.model import EfficientDet
from export.settings import ExportSettings


def anchors_center_size(anchors_xyxy: np.ndarray) -> np.ndarray:
    """[N,4] x1,y1,x2,y2 -> [N,4] xc, yc, w, h (float32), the plugin's BoxCenterSize anchors."""
    a = anchors_xyxy.astype(np.float32)
    wh = a[:, 2:] - a[:, :2]
    return np.concatenate([(a[:, :2] + a[:, 2:]) / 2, wh], 1).astype(np.float32)


@torch.no_grad()
def swap_box_xy(model: EfficientDet) -> None:
    """Permute the box head outputs from effdet's (ty, tx, th, tw) to (tx, ty, tw, th), per anchor."""
    conv = model.box_net.predict.conv_pw
    perm = torch.tensor([4 * a + i for a in range(conv.out_channels // 4) for i in (1, 0, 3, 2)])
    conv.weight.copy_(conv.weight[perm])
    if conv.bias is not None:
        conv.bias.copy_(conv.bias[perm])


class ExportGraph(nn.Module):
    """images -> (boxes [B,N,4] xyxy, scores [B,N,C]) or, with NMS, (box_regression, cls_logits)."""

    def __init__(self, model: EfficientDet, anchors_xyxy: np.ndarray, s: ExportSettings) -> None:
        super().__init__()
        self.model, self.s = model, s
        c = model.config
        self.register_buffer("scale", torch.tensor([1.0 / v for v in c.std]).reshape(1, 3, 1, 1))
        self.register_buffer("shift", torch.tensor([-m / v for m, v in zip(c.mean, c.std)]).reshape(1, 3, 1, 1))
        cs = torch.from_numpy(anchors_center_size(anchors_xyxy))
        self.register_buffer("anchor_center", cs[:, :2])
        self.register_buffer("anchor_size", cs[:, 2:])
        self.tail_decodes = s.nms != "none"
        if self.tail_decodes:
            swap_box_xy(model)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = images.float() if self.s.input_dtype == "uint8" else images
        if self.s.input_format == "nhwc":
            x = x.permute(0, 3, 1, 2)
        if self.s.preprocess:
            x = x * self.scale + self.shift
        cls, box = self.model(x)
        if self.tail_decodes:
            return box, cls
        # effdet coding: (ty, tx, th, tw) relative to anchor centers and sizes
        yx_offset = box[..., 0:2].flip(-1)  # (tx, ty)
        hw_log = box[..., 2:4].flip(-1)     # (tw, th)
        center = yx_offset * self.anchor_size + self.anchor_center
        half = torch.exp(hw_log) * self.anchor_size * 0.5
        return torch.cat([center - half, center + half], -1), torch.sigmoid(cls)
