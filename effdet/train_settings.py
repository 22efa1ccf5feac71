"""Training settings as data (torch-free, so the CLI can list the flags without importing torch)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrainSettings:
    """One training run. The defaults are the recipe of the shipped `shapes_d0` (README)."""

    model: str = "tf_efficientdet_d0"
    image_size: int = 256
    steps: int = 1500
    batch: int = 16
    lr: float = 2e-3
    weight_decay: float = 1e-2
    warmup_steps: int = 200
    ema_decay: float = 0.999
    clip_grad: float = 10.0
    seed: int = 0
    threads: int = 0            # 0: torch's default
    bf16: bool = True           # CPU autocast to bfloat16 (weights and loss stay FP32): ~2x on AVX512-BF16
    log_every: int = 20
    checkpoint_every: int = 250
