"""`synth`: write a synthetic shapes dataset (PNG images + COCO annotations), deterministic per seed."""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--output", required=True,
                   help="a new or empty folder: OUTPUT/images/*.png + OUTPUT/annotations.json")
    p.add_argument("--images", type=int, default=300)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--image-size", type=int, default=256, help="square images of this many pixels (32 to 2048)")


def run(args: argparse.Namespace) -> int:
    from effdet.synthetic import SynthSpec, check_fresh_folder, write_dataset

    check_fresh_folder(args.output)     # the counts, seed and size are checked before anything is rendered
    try:
        path = write_dataset(args.output, args.images, args.seed,
                             SynthSpec(height=args.image_size, width=args.image_size))
    except BaseException:               # Ctrl-C or a failure: no half dataset (images without annotations.json)
        _empty(Path(args.output))       # the folder was new or empty (check_fresh_folder): all of it is ours
        raise
    print(f"wrote {path}")
    return 0


def _empty(folder: Path) -> None:
    if folder.is_dir():
        for child in folder.iterdir():
            shutil.rmtree(child) if child.is_dir() else child.unlink()
