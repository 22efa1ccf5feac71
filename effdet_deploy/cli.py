"""`effdet-deploy <command>`: parses flags and calls the library. Exit codes: 0 ok, 1 failed check,
2 bad input (one line on stderr, from DeployError)."""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from pathlib import Path
from typing import NoReturn

from effdet_deploy.argument_checks import check_shared_arguments
from effdet_deploy.output_paths import check_output_paths
from runtime.errors import DeployError

# name -> (module under effdet_deploy.commands, one-line help). Modules load lazily, so `--help` and
# runtime-only commands never import torch.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("demo", "the whole pipeline on the shipped shapes_d0 detector, with pictures and a report"),
    "export": ("export", "weights -> ONNX (preprocessing, decoding, NMS in the graph)"),
    "quantize": ("quantize", "FP32 ONNX -> strongly typed FP16 or Q/DQ INT8 ONNX (ModelOpt)"),
    "build": ("build", "ONNX -> TensorRT engine + sidecar (trtexec-like flags)"),
    "infer": ("infer", "images -> PNGs with boxes + COCO-results JSON; video/camera/stream -> annotated video + "
              "JSON lines; any backend"),
    "compare": ("compare", "parity of ONNX/engines against a reference: PASS/FAIL per target"),
    "bench": ("bench", "trtexec-style latency and throughput on a backend"),
    "eval": ("eval", "COCO mAP of a model file on a COCO-format dataset"),
    "triton": ("triton", "Triton model repository for an ONNX file or engine"),
    "serve": ("serve", "a Triton server over a model file: encoded images in, detections out"),
    "pipeline": ("pipeline", "export + FP16/INT8 + engines + compare + bench + eval -> report.md"),
    "info": ("info", "what a model name or file is: contract, NMS, precision, TensorRT parsers, params/FLOPs"),
    "lint": ("lint", "TensorRT parser + Q/DQ fusion preconditions of an ONNX file for a TensorRT version"),
    "synth": ("synth", "write a synthetic shapes dataset (images + COCO annotations)"),
    "train": ("train", "train an EfficientDet on synthetic shapes (CPU-practical)"),
}


class OneLineParser(argparse.ArgumentParser):
    """Usage errors as one line on stderr, exit 2 (DESIGN section 4), pointing at --help."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def no_default(action: argparse.Action) -> bool:
    """Nothing worth showing: required, no default, an off switch, or --help itself (0 is a default)."""
    return action.required or any(action.default is v for v in (None, False, argparse.SUPPRESS))


class DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """--help shows each flag's default, except where there is none to show (None, off switches) or the help
    states it already ("(default ..." / "default: ...")."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if no_default(action) or "(default" in (action.help or "") or "default:" in (action.help or ""):
            return action.help or ""
        return super()._get_help_string(action) or ""


def version() -> str:
    """The installed distribution's version (package metadata), else the source tree's."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("efficientdet-deploy")
    except PackageNotFoundError:
        from effdet_deploy import __version__

        return __version__


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="effdet-deploy", description="EfficientDet from PyTorch to ONNX and TensorRT",
                           formatter_class=DefaultsFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars (they show only on a terminal)")
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text, formatter_class=DefaultsFormatter)
        p.set_defaults(_module=module)
        p.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                       help="no progress bars (they show only on a terminal anyway)")
        importlib.import_module(f"effdet_deploy.commands.{module}").add_arguments(p)
        for action in p._actions:    # a flag without help text still shows its default in --help
            if action.help is None and not no_default(action):
                action.help = "(default: %(default)s)"
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # progress on stdout; stderr carries only the one-line error (and third-party warnings)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s", stream=sys.stdout)
    from runtime import progress

    progress.configure(quiet=args.quiet)
    for handler in logging.getLogger().handlers:     # a log line first erases a progress bar's line
        progress.watch_log(handler)
    if not args.command:
        parser.print_help()
        return 2
    fresh = [Path(v) for v in (getattr(args, "output", None),) if v and not Path(v).exists()]
    try:
        check_shared_arguments(args)          # both torch-free: answered before any heavy import
        check_output_paths(args.command, args)
        code = int(importlib.import_module(f"effdet_deploy.commands.{args._module}").run(args) or 0)
        sys.stdout.flush()           # a closed pipe shows here, not in the interpreter's exit
    except DeployError as e:
        print(f"effdet-deploy {args.command}: error: {e}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:        # Ctrl-C: one line, exit 130 (128 + SIGINT) like a shell; artifacts are
        remove_empty_folders(fresh)  # written atomically, so nothing half-written is left behind
        print(f"\neffdet-deploy {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:          # `effdet-deploy info x --json | head`: the reader left; no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())   # Python's own flush at exit must not fail
        return 1
    except BaseException:
        remove_empty_folders(fresh)
        raise
    if code != 0:
        remove_empty_folders(fresh)
    return code


def remove_empty_folders(paths: list[Path]) -> None:
    """A failed command leaves no empty output folder behind: drop folders it created and left empty
    (innermost first); anything with a file in it stays."""
    for root in paths:
        if root.is_dir():
            for folder in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)) + [root]:
                if not any(folder.iterdir()):
                    folder.rmdir()
