"""Training settings as data (torch-free, so the CLI can list the flags without importing torch)."""
from __future__ import annotations

import math
from dataclasses import dataclass

from runtime.errors import DeployError


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


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS tells, else the machine's count)."""
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:       # macOS, Windows
        return os.cpu_count() or 1


def check_settings(s: TrainSettings) -> None:
    """Reject bad settings before the model is built, one line naming the flag each. --threads above the
    usable cores is refused, not capped: oversubscribed BLAS threads made 2 steps take minutes on 2 cores."""
    from effdet.config import get_config
    from effdet.synthetic import check_image_size, check_seed

    get_config(s.model)                                     # unknown model: one line listing the known ones
    check_image_size(s.image_size)
    check_seed(s.seed)
    for flag, value, least in (("--steps", s.steps, 1), ("--batch", s.batch, 2), ("--log-every", s.log_every, 1),
                               ("--checkpoint-every", s.checkpoint_every, 1), ("--warmup-steps", s.warmup_steps, 0)):
        if value < least:
            why = " (BatchNorm needs more than one image per batch)" if flag == "--batch" else ""
            raise DeployError(f"{flag} must be at least {least}, got {value}{why}")
    for flag, number in (("--lr", s.lr), ("--clip-grad", s.clip_grad)):
        if not 0 < number < math.inf:
            raise DeployError(f"{flag} must be a positive number, got {number}")
    if not 0 <= s.weight_decay < math.inf:
        raise DeployError(f"--weight-decay must be a number >= 0, got {s.weight_decay}")
    if not 0 <= s.ema_decay < 1:
        raise DeployError(f"--ema-decay must be in [0, 1), got {s.ema_decay}")
    cores = usable_cores()
    if not 0 <= s.threads <= cores:
        raise DeployError(f"--threads must be 0 (PyTorch's default) to {cores} (the cores this process may use), "
                          f"got {s.threads}")
