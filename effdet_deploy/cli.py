"""`effdet-deploy <command>`: parses flags and calls the library. Exit codes: 0 ok, 1 failed check,
2 bad input (one line on stderr, from DeployError)."""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from runtime.errors import DeployError

# name -> (module under effdet_deploy.commands, one-line help). Modules load lazily, so `--help` and
# runtime-only commands never import torch.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("demo", "the whole pipeline on the shipped shapes_d0 detector, with pictures and a report"),
    "export": ("export", "weights -> ONNX (preprocessing, decoding, NMS in the graph)"),
    "quantize": ("quantize", "FP32 ONNX -> strongly typed FP16 or Q/DQ INT8 ONNX (ModelOpt)"),
    "build": ("build", "ONNX -> TensorRT engine + sidecar (trtexec-like flags)"),
    "infer": ("infer", "images -> PNGs with boxes + COCO-results JSON, on any backend"),
    "compare": ("compare", "parity of ONNX/engines against a reference: PASS/FAIL per target"),
    "bench": ("bench", "trtexec-style latency and throughput on a backend"),
    "eval": ("eval", "COCO mAP of a model file on a COCO-format dataset"),
    "triton": ("triton", "Triton model repository for an ONNX file or engine"),
    "pipeline": ("pipeline", "export + FP16/INT8 + engines + compare + bench + eval -> report.md"),
    "synth": ("synth", "write a synthetic shapes dataset (images + COCO annotations)"),
    "train": ("train", "train an EfficientDet on synthetic shapes (CPU-practical)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="effdet-deploy", description="EfficientDet from PyTorch to ONNX and TensorRT")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        importlib.import_module(f"effdet_deploy.commands.{module}").add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # progress on stdout; stderr carries only the one-line error (and third-party warnings)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s", stream=sys.stdout)
    if not args.command:
        parser.print_help()
        return 2
    try:
        return int(importlib.import_module(f"effdet_deploy.commands.{args._module}").run(args) or 0)
    except DeployError as e:
        print(f"effdet-deploy {args.command}: error: {e}", file=sys.stderr)
        return 2
