"""Which cuda-python `make` installs, so a setup never changes the CUDA major a user's TensorRT needs.

- a TensorRT wheel is installed ([trt-cu12] / [trt-cu13]): cuda-python of its CUDA major, unless already there
  (the CUDA major of cuda-python must be TensorRT's: runtime/trt_compat.py cuda_mismatch);
- no TensorRT wheel but cuda-python present (JetPack's system TensorRT, or the user's choice): nothing;
- neither (a fresh machine): cuda-python 12.x, the major of the default TensorRT extra [trt-cu12] (R535+ drivers).

Prints the pip requirement, or nothing when nothing is to be installed:  python tools/cuda_python_spec.py
"""
from __future__ import annotations

import sys
from importlib.metadata import distributions
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runtime.trt_compat import tensorrt_cuda_major  # noqa: E402

# pyproject.toml's [trt-cu12] / [trt-cu13] pins (>= 12.6.2: the first with cuda.bindings, runtime/cudart.py)
CUDA_PYTHON = {12: "cuda-python>=12.6.2,<13", 13: "cuda-python>=13,<14"}
DEFAULT_MAJOR = 12


def cuda_python_requirement(installed: dict[str, str]) -> str | None:
    """The requirement to install given the installed distributions {name: version}, or None for nothing."""
    names = {name.lower().replace("_", "-"): version for name, version in installed.items()}
    trt = tensorrt_cuda_major(list(names))
    have = names.get("cuda-python")
    have_major = int(have.split(".")[0]) if have else None
    if trt is not None:
        return None if have_major == trt or trt not in CUDA_PYTHON else CUDA_PYTHON[trt]
    return None if have_major is not None else CUDA_PYTHON[DEFAULT_MAJOR]


def main() -> int:
    installed = {str(d.metadata["Name"] or ""): str(d.version) for d in distributions()}
    requirement = cuda_python_requirement(installed)
    if requirement:
        print(requirement)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
