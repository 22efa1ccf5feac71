"""`train`: train an EfficientDet on synthetic shapes (CPU-practical); how `shapes_d0` was made."""
from __future__ import annotations

import argparse
from dataclasses import fields


HELP = {"batch": "images per step, at least 2 (BatchNorm)", "image_size": "square input side, 32 to 2048",
        "threads": "0: PyTorch's default; at most the cores this process may use",
        "seed": "0 to 2**64 - 1; image i of a seed is always the same image"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    from effdet.train_settings import TrainSettings

    for f in fields(TrainSettings):
        flag = "--" + f.name.replace("_", "-")
        if f.type in ("bool", bool):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default)
        else:
            kind = {"int": int, "float": float}.get(str(f.type), str)
            p.add_argument(flag, type=kind, default=f.default, help=HELP.get(f.name))   # --help shows the default
    p.add_argument("--output", required=True, help="folder for last.pth (written every --checkpoint-every steps)")
    p.add_argument("--resume", default=None, help="a last.pth to continue from")


def run(args: argparse.Namespace) -> int:
    from effdet.train_settings import TrainSettings, check_settings

    settings = TrainSettings(**{f.name: getattr(args, f.name) for f in fields(TrainSettings)})
    check_settings(settings)        # torch-free: a bad flag is answered before torch loads (effdet.train checks again)
    from effdet.train import train

    path = train(settings, args.output, args.resume)
    print(f"wrote {path}")
    return 0
