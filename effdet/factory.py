"""`create_model(name, checkpoint=...)`: build from the table and load effdet weights as they are."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from effdet.checkpoint import CheckpointFacts, checkpoint_num_classes, load_state, read_checkpoint
from effdet.config import get_config
from effdet.model import EfficientDet
from effdet.pretrained import has_pretrained, pretrained_path
from runtime.errors import DeployError


def init_weights(model: EfficientDet) -> None:
    """Fresh-model init as effdet: class prior 0.01 on the class head bias, BN at identity."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.fill_(1.0)
                m.bias.zero_()
        bias = model.class_net.predict.conv_pw.bias
        if bias is not None:
            bias.fill_(-math.log((1 - 0.01) / 0.01))


def create_model(name: str, checkpoint: str | Path | None = None, *, num_classes: int | None = None,
                 image_size: Any = None, pretrained: bool | None = None, **overrides: Any) -> EfficientDet:
    """An EfficientDet from the table (name or alias), optionally loading an effdet checkpoint.

    num_classes different from the checkpoint's: the class head is re-initialized, with a warning.
    image_size: the size `fuse()` and the export default to (default: the one a training checkpoint records,
    else the model's); the eager model runs at any size. Class names recorded in a checkpoint are kept.
    pretrained: load the weights shipped for `name` (checksum-verified); None = when they exist and no
    checkpoint is given (so `create_model("shapes_d0")` is the trained detector).
    """
    if pretrained is None:
        pretrained = checkpoint is None and has_pretrained(name)
    if pretrained:
        if checkpoint is not None:
            raise DeployError("give either a checkpoint or pretrained=True, not both")
        checkpoint = pretrained_path(name)
    state, facts = read_checkpoint(checkpoint) if checkpoint is not None else (None, CheckpointFacts())
    image_size = image_size if image_size is not None else facts.image_size   # a training checkpoint's size
    if num_classes is not None and num_classes < 1:
        raise DeployError(f"num_classes must be at least 1, got {num_classes}")
    if image_size is not None:
        overrides["image_size"] = image_size
    config = get_config(name, **overrides)
    found = checkpoint_num_classes(state, config.anchors_per_location) if state is not None else None
    classes = num_classes or found
    if classes is not None and classes != config.num_classes:
        config = config.with_overrides(num_classes=classes, class_names=())  # names no longer apply
    if facts.class_names and len(facts.class_names) == config.num_classes:
        config = config.with_overrides(class_names=facts.class_names)
    model = EfficientDet(config)
    init_weights(model)
    if state is not None:
        load_state(model, state, str(checkpoint), facts)
    return model.eval()
