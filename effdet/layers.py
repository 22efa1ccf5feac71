"""Small building blocks shared by backbone, BiFPN and heads.

Padding: TF "SAME" pads (k-1)*d + 1 - stride-aligned rest, more at the end, and depends on the input
size. `SamePad` computes it at run time; `fuse()` records the size once and freezes the pads, so the
exported graph has no shape arithmetic. Stride-1 odd kernels are symmetric and use plain Conv2d padding.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def make_activation(kind: str) -> nn.Module:
    """'swish' (SiLU; exported as x * sigmoid(x), which TensorRT fuses) or 'relu6'."""
    if kind == "swish":
        return nn.SiLU()
    if kind == "relu6":
        return nn.ReLU6()
    raise ValueError(f"unknown activation '{kind}'")


def same_pads(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TF SAME padding (before, after) along one axis of length `size`."""
    total = max((math.ceil(size / stride) - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


class SamePad(nn.Module):
    """Pads like TF SAME for a kernel/stride; pads become constants once `freeze()` has run."""

    def __init__(self, kernel: int, stride: int, value: float = 0.0) -> None:
        super().__init__()
        self.kernel, self.stride, self.value = kernel, stride, value
        self.frozen: tuple[int, int, int, int] | None = None

    def pads_for(self, h: int, w: int) -> tuple[int, int, int, int]:
        top, bottom = same_pads(h, self.kernel, self.stride)
        left, right = same_pads(w, self.kernel, self.stride)
        return left, right, top, bottom

    def freeze(self, h: int, w: int) -> None:
        self.frozen = self.pads_for(h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = self.frozen if self.frozen is not None else self.pads_for(int(x.shape[-2]), int(x.shape[-1]))
        if not any(pads):
            return x
        return F.pad(x, pads, value=self.value)


def needs_dynamic_pad(kernel: int, stride: int, tf_padding: bool) -> bool:
    return tf_padding and not (stride == 1 and kernel % 2 == 1)


class Conv2dSame(nn.Conv2d):
    """Conv2d with TF SAME padding; a plain nn.Conv2d subclass so checkpoint keys stay the same."""

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, padding=0, **kwargs)
        self.pad = SamePad(self.kernel_size[0], self.stride[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(self.pad(x))


def create_conv(in_ch: int, out_ch: int, kernel: int, stride: int = 1, *, tf_padding: bool,
                depthwise: bool = False, bias: bool = False) -> nn.Conv2d:
    """Conv with effdet/timm padding rules: SAME for tf_* models, symmetric k//2 otherwise."""
    groups = in_ch if depthwise else 1
    if needs_dynamic_pad(kernel, stride, tf_padding):
        return Conv2dSame(in_ch, out_ch, kernel, stride, groups=groups, bias=bias)
    pad = ((stride - 1) + (kernel - 1)) // 2 if not tf_padding else kernel // 2
    return nn.Conv2d(in_ch, out_ch, kernel, stride, padding=pad, groups=groups, bias=bias)


class BatchNormAct2d(nn.BatchNorm2d):
    """BatchNorm followed by an activation, with timm's state_dict keys (weight, bias, running_*).

    `fuse()` folds the BN into the conv before it and keeps only `act`.
    """

    def __init__(self, num_features: int, eps: float, act: str | None) -> None:
        super().__init__(num_features, eps=eps)
        self.act = make_activation(act) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(super().forward(x))


class MaxPoolDown(nn.Module):
    """Stride-2 3x3 max pool as effdet's resampling: TF SAME (pads with -inf) or PyTorch padding 1."""

    def __init__(self, tf_padding: bool, kernel: int = 3, stride: int = 2) -> None:
        super().__init__()
        self.pad = SamePad(kernel, stride, value=float("-inf")) if tf_padding else None
        self.pool = nn.MaxPool2d(kernel, stride, padding=0 if tf_padding else (kernel - 1) // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.pad(x) if self.pad is not None else x)


class Upsample(nn.Module):
    """Nearest upsampling to the size of the level it feeds; the size is frozen by `fuse()`."""

    def __init__(self) -> None:
        super().__init__()
        self.frozen: tuple[int, int] | None = None

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        size = self.frozen or size
        if size[0] == 2 * x.shape[-2] and size[1] == 2 * x.shape[-1]:
            return F.interpolate(x, scale_factor=2.0, mode="nearest")
        return F.interpolate(x, size=size, mode="nearest")
