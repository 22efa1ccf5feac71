"""The model table as data: EfficientDet D0-D7x and Lite0-4 (paper Table 1 + the official hparams).

Values follow google/automl efficientdet `hparams_config.py` and rwightman/effdet `model_config.py`,
so effdet checkpoints load unchanged. A `ModelConfig` is frozen: read-only once the model is built.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from runtime.errors import DeployError

IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)
LITE_MEAN = (127.5, 127.5, 127.5)
LITE_STD = (127.5, 127.5, 127.5)

# Backbones: (width multiplier, depth multiplier). EfficientNet B0-B7 and EfficientNet-Lite0-4.
BACKBONES: dict[str, dict[str, Any]] = {
    **{f"efficientnet_b{i}": dict(width=w, depth=d, lite=False)
       for i, (w, d) in enumerate([(1.0, 1.0), (1.0, 1.1), (1.1, 1.2), (1.2, 1.4), (1.4, 1.8),
                                   (1.6, 2.2), (1.8, 2.6), (2.0, 3.1)])},
    **{f"efficientnet_lite{i}": dict(width=w, depth=d, lite=True)
       for i, (w, d) in enumerate([(1.0, 1.0), (1.0, 1.1), (1.1, 1.2), (1.2, 1.4), (1.4, 1.8)])},
}


@dataclass(frozen=True)
class ModelConfig:
    """Everything that defines one EfficientDet variant. Image size is (H, W)."""

    name: str
    backbone: str
    image_size: tuple[int, int]
    fpn_channels: int
    fpn_cell_repeats: int
    box_class_repeats: int
    num_classes: int = 90
    min_level: int = 3
    max_level: int = 7
    num_scales: int = 3
    aspect_ratios: tuple[tuple[float, float], ...] = ((1.0, 1.0), (1.4, 0.7), (0.7, 1.4))
    anchor_scale: float = 4.0
    fusion: str = "fastattn"          # 'fastattn': relu(w) / (sum(relu(w)) + 1e-4);  'sum': plain sum
    act: str = "swish"                # 'swish' or 'relu6' (backbone, BiFPN and heads)
    tf_padding: bool = True           # TF "SAME" padding (tf_* variants) vs PyTorch k//2 padding
    redundant_bias: bool = True       # TF models keep a conv bias in front of BN
    backbone_bn_eps: float = 1e-3     # timm: 1e-3 for tf_ backbones, 1e-5 for PyTorch-native ones
    bn_eps: float = 1e-3              # BiFPN and heads
    mean: tuple[float, float, float] = IMAGENET_MEAN   # in 0-255 pixel units, RGB
    std: tuple[float, float, float] = IMAGENET_STD
    class_names: tuple[str, ...] = ()  # known for trained models (shapes_d0); else empty

    @property
    def num_levels(self) -> int:
        return self.max_level - self.min_level + 1

    @property
    def anchors_per_location(self) -> int:
        return self.num_scales * len(self.aspect_ratios)

    def with_overrides(self, **kwargs: Any) -> "ModelConfig":
        """A copy with some fields changed (e.g. image_size, num_classes)."""
        return replace(self, **kwargs)


def _tf(name: str, backbone: str, size: int, ch: int, cells: int, heads: int, **kw: Any) -> dict:
    return dict(name=name, backbone=backbone, image_size=(size, size), fpn_channels=ch,
                fpn_cell_repeats=cells, box_class_repeats=heads, **kw)


_LITE = dict(fusion="sum", act="relu6", mean=LITE_MEAN, std=LITE_STD)
_TORCH = dict(tf_padding=False, redundant_bias=False, backbone_bn_eps=1e-5)

MODEL_TABLE: dict[str, dict[str, Any]] = {c["name"]: c for c in [
    _tf("tf_efficientdet_d0", "efficientnet_b0", 512, 64, 3, 3),
    _tf("tf_efficientdet_d1", "efficientnet_b1", 640, 88, 4, 3),
    _tf("tf_efficientdet_d2", "efficientnet_b2", 768, 112, 5, 3),
    _tf("tf_efficientdet_d3", "efficientnet_b3", 896, 160, 6, 4),
    _tf("tf_efficientdet_d4", "efficientnet_b4", 1024, 224, 7, 4),
    _tf("tf_efficientdet_d5", "efficientnet_b5", 1280, 288, 7, 4),
    _tf("tf_efficientdet_d6", "efficientnet_b6", 1280, 384, 8, 5, fusion="sum"),
    _tf("tf_efficientdet_d7", "efficientnet_b6", 1536, 384, 8, 5, fusion="sum", anchor_scale=5.0),
    _tf("tf_efficientdet_d7x", "efficientnet_b7", 1536, 384, 8, 5, fusion="sum", max_level=8),
    _tf("efficientdet_d0", "efficientnet_b0", 512, 64, 3, 3, **_TORCH),
    _tf("efficientdet_d1", "efficientnet_b1", 640, 88, 4, 3, **_TORCH),
    # Lite: the official hparams use anchor_scale 3.0 for lite0-2 and lite3x, 4.0 for lite3 and lite4.
    _tf("tf_efficientdet_lite0", "efficientnet_lite0", 320, 64, 3, 3, anchor_scale=3.0, **_LITE),
    _tf("tf_efficientdet_lite1", "efficientnet_lite1", 384, 88, 4, 3, anchor_scale=3.0, **_LITE),
    _tf("tf_efficientdet_lite2", "efficientnet_lite2", 448, 112, 5, 3, anchor_scale=3.0, **_LITE),
    _tf("tf_efficientdet_lite3", "efficientnet_lite3", 512, 160, 6, 4, **_LITE),
    _tf("tf_efficientdet_lite3x", "efficientnet_lite3", 640, 200, 6, 4, anchor_scale=3.0, **_LITE),
    _tf("tf_efficientdet_lite4", "efficientnet_lite4", 640, 224, 7, 4, **_LITE),
]}

# Models trained by this project and shipped with it (effdet/pretrained.py holds their weights' checksums).
SHAPES_CLASSES = ("circle", "square", "triangle", "star", "hexagon", "cross")
MODEL_TABLE["shapes_d0"] = {**MODEL_TABLE["tf_efficientdet_d0"], "name": "shapes_d0", "image_size": (256, 256),
                            "num_classes": len(SHAPES_CLASSES), "class_names": SHAPES_CLASSES}

ALIASES: dict[str, str] = {
    **{f"d{i}": f"tf_efficientdet_d{i}" for i in range(8)},
    "d7x": "tf_efficientdet_d7x",
    **{f"lite{i}": f"tf_efficientdet_lite{i}" for i in range(5)},
    "lite3x": "tf_efficientdet_lite3x",
}


def list_models(include_aliases: bool = True) -> list[str]:
    """Model names of the table, then the short aliases."""
    return list(MODEL_TABLE) + (list(ALIASES) if include_aliases else [])


def get_config(name: str, **overrides: Any) -> ModelConfig:
    """The config of a model name or alias, with overrides (image_size as int or (H, W))."""
    full = ALIASES.get(name, name)
    if full not in MODEL_TABLE:
        raise DeployError(f"unknown model '{name}'; known: {', '.join(list_models())}")
    if "image_size" in overrides:
        overrides["image_size"] = parse_image_size(overrides["image_size"])
    return ModelConfig(**{**MODEL_TABLE[full], **overrides})


def parse_image_size(value: Any) -> tuple[int, int]:
    """int, 'H,W', 'HxW' or (H, W) -> (H, W); rejects zero, negative and non-numbers."""
    if isinstance(value, str):
        parts = value.replace("x", ",").split(",")
    elif isinstance(value, (tuple, list)):
        parts = list(value)
    else:
        parts = [value, value]
    if len(parts) == 1:
        parts = parts * 2
    try:
        h, w = (int(p) for p in parts)
    except (TypeError, ValueError):
        raise DeployError(f"image size {value!r} is not a number or H,W pair") from None
    if h <= 0 or w <= 0 or len(parts) != 2:
        raise DeployError(f"image size {value!r} must be two positive integers")
    return h, w
