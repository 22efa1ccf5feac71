"""Checks every command's output paths against its inputs before it runs: an output never replaces an input
(`bench --json model.onnx`, `export --checkpoint c.pth --output c.pth`, `eval --output annotations.json`), a
file output is not an existing folder and a folder output not an existing file, and ONNX outputs end in .onnx
(their OUT.log is named after them). One DeployError naming the flag, before any work or write."""
from __future__ import annotations

import argparse
from pathlib import Path

from runtime.errors import DeployError

INPUT_FLAGS = ("model", "onnx", "checkpoint", "images", "annotations", "calib_dir", "input", "reference", "target",
               "resume")
FILE_OUTPUTS = {"export": ("output",), "quantize": ("output",), "bench": ("json",), "eval": ("output",),
                "build": ("engine",)}
EXAMPLE_NAMES = {"export": "model.onnx", "quantize": "model.fp16.onnx", "bench": "bench.json",
                 "eval": "results.json", "build": "model.engine"}
FOLDER_OUTPUTS = {"compare": "output", "demo": "output", "infer": "output", "pipeline": "output", "synth": "output",
                  "train": "output", "triton": "output"}
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


def check_output_paths(command: str, args: argparse.Namespace) -> None:
    inputs = _existing_inputs(args)
    outputs = [(dest, True) for dest in FILE_OUTPUTS.get(command, ())]
    outputs += [(FOLDER_OUTPUTS[command], False)] if command in FOLDER_OUTPUTS else []
    for dest, is_file in outputs:
        value = getattr(args, dest, None)
        if not isinstance(value, (str, Path)) or not str(value):
            continue
        path, flag = Path(value), _flag(dest)
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
