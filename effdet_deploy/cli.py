"""`effdet-deploy <command>`: parses flags and calls the library. Exit codes: 0 ok, 1 failed check,
2 bad input (one line on stderr, from DeployError)."""
from __future__ import annotations

import os
import signal
import sys


def stop_at_once(signum: int, frame: object) -> None:
    """SIGINT while nothing of the run is open - before the work (interpreter and command modules loading,
    ~0.3 s) or after it (torch and ONNX Runtime teardown, up to ~2 s): no KeyboardInterrupt, which would surface
    outside main as a traceback or a silent death by signal; the same one line and exit 130 as during the work."""
    try:
        sys.stdout.flush()
    except OSError:                  # a closed pipe
        pass
    command = next((a for a in sys.argv[1:] if not a.startswith("-")), "")    # after -v / -q, which take no value
    os.write(2, f"\neffdet-deploy{' ' + command if command else ''}: interrupted\n".encode())
    os._exit(130)


WORKING = False     # True while a command's work runs (main): there SIGINT is a KeyboardInterrupt


def on_sigint(signum: int, frame: object) -> None:
    """The one SIGINT handler of a command-line run, so there is no moment between two handlers (a Ctrl-C that
    landed while main swapped them, right after the work, escaped as a traceback): during the work a
    KeyboardInterrupt - the command cleans up, then one line and 130 - and before or after it stop_at_once."""
    if WORKING:
        raise KeyboardInterrupt
    stop_at_once(signum, frame)


def install_on_sigint() -> None:
    """Only where Python's own handler is set: a job started with SIGINT ignored (`cmd &` in a script) keeps it
    ignored."""
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, on_sigint)


COMMAND_LINE = os.path.splitext(os.path.basename(sys.argv[0]))[0] == "effdet-deploy" or sys.argv[0] == os.path.join(
    os.path.dirname(__file__), "__main__.py")       # the console script or python -m, not an importing program
if COMMAND_LINE:
    install_on_sigint()
    from runtime.interrupts import defer_sigint_in_native_module_init

    defer_sigint_in_native_module_init()     # a Ctrl-C inside a C++ module's init is raised after it, in Python

import argparse  # noqa: E402  (after the handler: a Ctrl-C while these load is answered too)
import importlib  # noqa: E402
import logging  # noqa: E402
import threading  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import NoReturn  # noqa: E402

from effdet_deploy.argument_checks import check_shared_arguments  # noqa: E402
from effdet_deploy.output_paths import check_output_paths, new_folders  # noqa: E402
from runtime.errors import DeployError  # noqa: E402

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
    parser = build_parser()          # imports every command module: the first ~0.3 s (see stop_at_once)
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
    fresh = new_folders(args.command, args)     # removed again if the run fails or stops and leaves them empty
    global WORKING
    try:
        try:
            WORKING = True    # set first thing in the try, cleared in its finally: a Ctrl-C landing in
                              # between is a KeyboardInterrupt the handlers below catch
            check_shared_arguments(args)          # both torch-free: answered before any heavy import
            check_output_paths(args.command, args)
            code = int(importlib.import_module(f"effdet_deploy.commands.{args._module}").run(args) or 0)
            sys.stdout.flush()           # a closed pipe shows here, not in the interpreter's exit
        finally:
            WORKING = False   # from here (the handlers below included) a Ctrl-C is stop_at_once's line and 130
        if code != 0:
            remove_empty_folders(fresh)
    except DeployError as e:
        print(f"effdet-deploy {args.command}: error: {e}", file=sys.stderr)
        remove_empty_folders(fresh)
        code = 2
    except KeyboardInterrupt:        # Ctrl-C: one line, exit 130 (128 + SIGINT) like a shell; artifacts are
        WORKING = False              # written atomically, so nothing half-written is left behind (and a Ctrl-C
        remove_empty_folders(fresh)  # raised before the finally's own WORKING = False is the work's too)
        return interrupted(args.command)
    except BrokenPipeError:          # `effdet-deploy info x --json | head`: the reader left; no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())   # Python's own flush at exit must not fail
        return 1
    except BaseException:
        remove_empty_folders(fresh)
        raise
    return code


def interrupted(command: str) -> int:
    print(f"\neffdet-deploy {command}: interrupted", file=sys.stderr)
    if COMMAND_LINE:     # the process only shuts down now: a background thread's error on the way (train's DataLoader
        sys.excepthook = lambda *exc: None          # worker cut mid-handshake: multiprocessing's resource_sharer)
        threading.excepthook = lambda args: None    # is no second message after the one line
    return 130


def remove_empty_folders(paths: list[Path]) -> None:
    """A failed command leaves no empty output folder behind: drop folders it created and left empty
    (innermost first); anything with a file in it stays."""
    for root in paths:
        if root.is_dir():
            for folder in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)) + [root]:
                if not any(folder.iterdir()):
                    folder.rmdir()
