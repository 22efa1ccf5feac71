"""Checks every command's output paths against its inputs before it runs: an output never replaces an input
(`bench --json model.onnx`, `export --checkpoint c.pth --output c.pth`, `eval --output annotations.json`), a
file output is not an existing folder and a folder output not an existing file, and ONNX outputs end in .onnx
(their OUT.log is named after them), and the folder that will hold an output can be written: the nearest
existing folder on its path is a folder (not a file: `bench --json FILE/x.json`) and accepts a file (a probe
file is created and removed: permission bits say nothing for root or read-only mounts). One DeployError naming
the flag, before any work or write."""
from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from runtime.errors import DeployError

INPUT_FLAGS = ("model", "onnx", "checkpoint", "images", "annotations", "calib_dir", "input", "reference", "target",
               "resume")
FILE_OUTPUTS = {"export": ("output",), "quantize": ("output",), "bench": ("json",), "eval": ("output",),
                "build": ("engine",)}
EXAMPLE_NAMES = {"export": "model.onnx", "quantize": "model.fp16.onnx", "bench": "bench.json",
                 "eval": "results.json", "build": "model.engine"}
FOLDER_OUTPUTS = {"compare": "output", "demo": "output", "infer": "output", "pipeline": "output", "synth": "output",
                  "train": "output", "triton": "output", "serve": "repository"}
ONNX_OUTPUTS = {"export": "output", "quantize": "output"}


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def _existing_inputs(args: argparse.Namespace) -> dict[Path, str]:
    """Resolved path -> flag, for every input flag whose value is a path that exists (model names are not)."""
    found: dict[Path, str] = {}
    for dest in INPUT_FLAGS:
        value = getattr(args, dest, None)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, (str, Path)) and str(item) and Path(item).exists():
                found.setdefault(Path(item).resolve(), _flag(dest))
    return found


def _default_output(command: str, args: argparse.Namespace, dest: str) -> object:
    """The path a command writes when its output flag is left out (eval: eval-output/<model>.results.json)."""
    value = getattr(args, dest, None)
    if value is None and command == "eval" and isinstance(getattr(args, "model", None), str):
        from effdet_deploy.commands.eval import default_output

        return default_output(args.model)
    return value


def check_writable(path: Path, is_file: bool, flag: str) -> None:
    """The folder that will hold `path` (or be `path`) can be made and written: the nearest existing one on
    the way is a folder that accepts a new file."""
    anchor = (path.parent if is_file else path).absolute()
    while not anchor.exists() and anchor != anchor.parent:
        anchor = anchor.parent
    if not anchor.is_dir():
        raise DeployError(f"{path}: {flag} lies below {anchor}, which is a file, not a folder")
    try:
        handle, probe = tempfile.mkstemp(prefix=".effdet-write-check-", dir=anchor)
    except OSError as e:
        raise DeployError(f"{path}: {flag}: cannot write in {anchor} ({e.strerror or e})") from None
    os.close(handle)
    os.unlink(probe)


def _outputs(command: str, args: argparse.Namespace) -> list[tuple[str, Path, bool]]:
    """(flag dest, path, is a file) of every output the command line names or defaults to."""
    outputs = [(dest, True) for dest in FILE_OUTPUTS.get(command, ())]
    outputs += [(FOLDER_OUTPUTS[command], False)] if command in FOLDER_OUTPUTS else []
    found = []
    for dest, is_file in outputs:
        value = _default_output(command, args, dest)
        if isinstance(value, (str, Path)) and str(value):
            found.append((dest, Path(value), is_file))
    return found


def new_folders(command: str, args: argparse.Namespace) -> list[Path]:
    """The outermost folder each output would create (eval's default eval-output/ too): what the command line
    removes again, if left empty, when the command fails or is interrupted."""
    created = []
    for _, path, is_file in _outputs(command, args):
        folder = path.parent if is_file else path
        if folder.exists():
            continue
        while not folder.parent.exists() and folder.parent != folder:
            folder = folder.parent
        created.append(folder)
    return created


def check_output_paths(command: str, args: argparse.Namespace) -> None:
    inputs = _existing_inputs(args)
    for dest, path, is_file in _outputs(command, args):
        value, flag = str(path), _flag(dest)
        resolved = path.resolve()
        if is_file and resolved in inputs:     # a folder output may be an input folder (infer writes beside)
            raise DeployError(f"{value}: {flag} is the {inputs[resolved]} input; it would be overwritten")
        if is_file and path.is_file():
            holder = next((f for p, f in inputs.items() if p.is_dir() and p in resolved.parents), None)
            if holder:
                raise DeployError(f"{value}: {flag} would overwrite a file inside the {holder} folder")
        if is_file and path.is_dir():
            raise DeployError(f"{value}: {flag} is a folder; it names the file to write, e.g. "
                              f"{path / EXAMPLE_NAMES[command]}")
        if not is_file and path.is_file():
            raise DeployError(f"{value}: {flag} is a file; give a folder")
        if ONNX_OUTPUTS.get(command) == dest and path.suffix.lower() != ".onnx":
            raise DeployError(f"{value}: {flag} must end in .onnx")
        check_writable(path, is_file, flag)
