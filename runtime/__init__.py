"""The thin runtime: `from runtime import Detector`. numpy + Pillow, plus the chosen backend's library.
Exports resolve lazily (PEP 562) so importing a submodule never pulls in the Detector's imports."""
from __future__ import annotations

from typing import Any

__all__ = ["Detector", "Detections", "DeployError", "RemoteDetector"]
_EXPORTS = {"Detector": "runtime.detector", "Detections": "runtime.result", "DeployError": "runtime.errors",
            "RemoteDetector": "runtime.remote"}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'runtime' has no attribute {name!r}")
