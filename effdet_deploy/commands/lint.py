"""`lint FILE [--trt-version V]`: TensorRT parser and Q/DQ fusion preconditions of an ONNX file for one
TensorRT version (export/lint.py), like `polygraphy check lint`: one line per finding, then a summary line;
exit 0 clean, 1 with findings, 2 when the file or version cannot be read."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", metavar="FILE", help="an ONNX file")
    p.add_argument("--trt-version", default=None,
                   help="target TensorRT, e.g. 8.6 or 10.3 (default: the file's min_tensorrt metadata, else 8.6)")


def run(args: argparse.Namespace) -> int:
    from export.lint import report

    return report(Path(args.file), args.trt_version)
