"""`info MODEL|FILE`: what a model name, ONNX file, engine or checkpoint is (effdet_deploy/info.py)."""
from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", metavar="MODEL|FILE", help="model name (d0, tf_efficientdet_d7x, shapes_d0, ...), "
                                                         ".onnx, .engine/.plan (with its sidecar) or .pth checkpoint")
    p.add_argument("--image-size", default=None, help="model names: also count multiply-adds at N or H,W")
    p.add_argument("--json", action="store_true", help="print the sections as JSON")


def run(args: argparse.Namespace) -> int:
    from effdet_deploy.info import describe, format_sections

    sections = describe(args.target, args.image_size)
    print(json.dumps({title: dict(lines) for title, lines in sections}, indent=2) if args.json
          else format_sections(sections))
    return 0
