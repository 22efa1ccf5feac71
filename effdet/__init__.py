"""EfficientDet D0-D7x and Lite0-4 in PyTorch, loading effdet checkpoints unchanged.

Note: the PyPI package `effdet` (rwightman) uses the same import name; this package loads its
checkpoints without needing it, so do not install both in one environment.
"""
from effdet.config import ModelConfig, get_config, list_models
from effdet.factory import create_model
from effdet.model import EfficientDet

__all__ = ["EfficientDet", "ModelConfig", "create_model", "get_config", "list_models"]
