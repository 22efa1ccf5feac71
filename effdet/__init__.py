"""EfficientDet D0-D7x and Lite0-4 in PyTorch, loading effdet checkpoints unchanged.

Note: the PyPI package `effdet` (rwightman) uses the same import name; this package loads its
checkpoints without needing it, so do not install both in one environment.
Exports resolve lazily (PEP 562), so torch-free parts (effdet.config, effdet.synthetic's tables,
effdet.train_settings) can be imported where torch is not installed.
"""
from __future__ import annotations

from typing import Any

_EXPORTS = {"EfficientDet": "effdet.model", "ModelConfig": "effdet.config", "create_model": "effdet.factory",
            "get_config": "effdet.config", "list_models": "effdet.config"}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'effdet' has no attribute {name!r}")
