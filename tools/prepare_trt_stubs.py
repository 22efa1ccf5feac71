"""Unpack tensorrt-stubs into a folder mypy reads (never into the venv: an importable `tensorrt`
namespace without the library makes tools such as ModelOpt believe TensorRT is installed), fixing the
stub's syntax errors (parameters named `in`; a non-default parameter after defaulted ones).
See ../shared/notes/tensorrt-stubs.md.   Usage: python tools/prepare_trt_stubs.py WHEEL OUT_DIR"""
from __future__ import annotations

import re
import shutil
import sys
import zipfile
from pathlib import Path

PACKAGES = ("tensorrt/", "tensorrt_bindings/")


def fix(text: str) -> str:
    text = re.sub(r"\bin: ", "in_: ", text)
    return re.sub(r"(power: Weights = None, )channel_axis: int\)", r"\1channel_axis: int = ...)", text)


def main(wheel: Path, out: Path) -> None:
    for pkg in PACKAGES:
        shutil.rmtree(out / pkg, ignore_errors=True)
    count = 0
    with zipfile.ZipFile(wheel) as zf:
        for name in zf.namelist():
            if name.startswith(PACKAGES) and name.endswith(".pyi"):
                target = out / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(fix(zf.read(name).decode()))
                count += 1
    if not count:
        sys.exit(f"{wheel}: no tensorrt stubs inside")
    print(f"{count} tensorrt stub files ready in {out}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(Path(sys.argv[1]), Path(sys.argv[2]))
