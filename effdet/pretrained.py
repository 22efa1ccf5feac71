"""Weights trained by this project and shipped inside the package, verified by SHA-256 on load.

Why a checksum: a truncated or edited file would otherwise load as a silently worse model.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from runtime.errors import DeployError

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"

# model name -> (file under effdet/weights, sha256 of that file). How each was trained: README.
PRETRAINED: dict[str, tuple[str, str]] = {
    "shapes_d0": ("shapes_d0.pth", "0044331ad7318a070076b52fe16d2f8c10072cf09bebad6a0c43fc7bbfd16ba7"),
}


def has_pretrained(name: str) -> bool:
    return name in PRETRAINED


def pretrained_path(name: str) -> Path:
    """The verified weights file of a shipped model; DeployError if none ships or the file is damaged."""
    if name not in PRETRAINED:
        raise DeployError(f"no shipped weights for '{name}'; shipped: {', '.join(PRETRAINED) or 'none'}")
    file, expected = PRETRAINED[name]
    path = WEIGHTS_DIR / file
    if not path.is_file():
        raise DeployError(f"{path}: shipped weights of '{name}' are missing (reinstall the package)")
    actual = hashlib.sha256(path.read_bytes()).hexdigest()
    if actual != expected:
        raise DeployError(f"{path}: checksum mismatch (sha256 {actual[:16]}..., expected {expected[:16]}...); "
                          "the file is damaged")
    return path
