"""Images the tools run on when the user gives none: the bundled picture plus generated shapes scenes
(deterministic), so compare/bench/pipeline work out of the box and offline."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from runtime.image_io import list_images, read_image

ASSET = Path(__file__).resolve().parent / "assets" / "demo.jpg"     # package data: in the wheel too
TOOL_SEED = 31


def tool_images(folder: str | Path | None, limit: int = 16) -> tuple[list[str], list[np.ndarray]]:
    """(names, HxWx3 uint8 images): the first `limit` images of `folder`, or the built-in set."""
    if folder is not None:
        return _readable(list_images(folder), limit, Path(folder))
    from effdet.synthetic import render

    count = max(0, limit - 1)
    return (["demo.jpg"] + [f"shapes_{TOOL_SEED}_{i}.png" for i in range(count)],
            [read_image(ASSET)] + [render(TOOL_SEED, i).image for i in range(count)])


def readable_images(files: list[Path], limit: int, root: Path | None = None
                    ) -> tuple[list[str], list[np.ndarray], list[str]]:
    """(names, images, names skipped): the first `limit` images that can be read; each unreadable or oversized
    one is skipped with one line (as infer and eval do). None readable is the caller's to judge. Names are paths
    below `root` where given (a/1.png and b/1.png of one folder stay two images), else file names."""
    from runtime.errors import DeployError

    names: list[str] = []
    images: list[np.ndarray] = []
    skipped: list[str] = []
    for f in files:
        if len(images) == limit:
            break
        name = f.relative_to(root).as_posix() if root is not None and f.is_relative_to(root) else f.name
        try:
            images.append(read_image(f))
            names.append(name)
        except DeployError as e:
            skipped.append(name)
            print(f"skipped: {e}")
    return names, images, skipped


def _readable(files: list[Path], limit: int, root: Path) -> tuple[list[str], list[np.ndarray]]:
    """readable_images; all unreadable is one DeployError."""
    from runtime.errors import DeployError

    names, images, skipped = readable_images(files, limit, root)
    if not images:
        raise DeployError(f"{files[0].parent}: none of the {len(skipped)} images could be read "
                          f"(first: {skipped[0]})")
    if skipped:
        print(f"skipped {len(skipped)} unreadable image(s): {', '.join(skipped[:3])}{' ...' if len(skipped) > 3 else ''}")
    return names, images


def add_checkpoint_flags(p: object) -> None:
    """--arch / --image-size: how to build the network for a .pth checkpoint (other files say it themselves)."""
    p.add_argument("--arch", default=None, help="architecture of a .pth checkpoint, e.g. tf_efficientdet_d0")  # type: ignore[attr-defined]
    p.add_argument("--image-size", default=None, help="input size for a .pth checkpoint (N or H,W)")  # type: ignore[attr-defined]


def checkpoint_options(args: object) -> dict[str, object]:
    options: dict[str, object] = {}
    if getattr(args, "arch", None):
        options["model"] = args.arch  # type: ignore[attr-defined]
    if getattr(args, "image_size", None):
        options["image_size"] = args.image_size  # type: ignore[attr-defined]
    return options


def add_threads_flag(p: object) -> None:
    """--threads N: CPU threads of the run (ONNX Runtime intra-op threads; torch.set_num_threads)."""
    p.add_argument("--threads", type=_positive_int, default=None, metavar="N",  # type: ignore[attr-defined]
                   help="CPU threads: ONNX Runtime intra-op threads, or torch.set_num_threads for a checkpoint "
                        "(default: the library's own choice, usually every core)")


def _positive_int(text: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got '{text}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def backend_options(args: object) -> dict[str, object]:
    """checkpoint_options plus threads= where --threads was given (a TensorRT engine refuses it)."""
    options = checkpoint_options(args)
    if getattr(args, "threads", None):
        options["threads"] = args.threads  # type: ignore[attr-defined]
    return options
