"""typings/cuda/bindings/*.pyi describe the installed cuda-bindings: every function, parameter name, class
and enum value our stub declares exists there (so `make typecheck` checks runtime/cudart.py against the
real API, not against a wish). Needs cuda-python, not a GPU."""
from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import pytest

STUBS = Path(__file__).resolve().parents[1] / "typings" / "cuda" / "bindings"


def _module(name: str):
    try:
        return importlib.import_module(name)
    except ImportError as e:
        pytest.skip(f"cuda-python is not installed ({e})")


def _stub(name: str) -> ast.Module:
    return ast.parse((STUBS / f"{name}.pyi").read_text())


def test_runtime_stub_functions_exist_with_the_same_parameters():
    rt = _module("cuda.bindings.runtime")
    functions = [n for n in _stub("runtime").body if isinstance(n, ast.FunctionDef)]
    assert len(functions) >= 25
    for fn in functions:
        assert hasattr(rt, fn.name), f"cuda.bindings.runtime has no {fn.name}"
        stub_params = [a.arg for a in fn.args.args]
        real_params = list(inspect.signature(getattr(rt, fn.name)).parameters)
        assert stub_params == real_params, f"{fn.name}: stub {stub_params}, cuda-bindings {real_params}"


def test_runtime_stub_classes_and_enum_values_exist():
    rt = _module("cuda.bindings.runtime")
    for cls in (n for n in _stub("runtime").body if isinstance(n, ast.ClassDef)):
        real = getattr(rt, cls.name, None)
        assert real is not None, f"cuda.bindings.runtime has no {cls.name}"
        for item in cls.body:
            if isinstance(item, ast.Assign) and isinstance(item.value, ast.Constant):   # enum member = value
                member = item.targets[0].id  # type: ignore[attr-defined]
                assert int(getattr(real, member)) == item.value.value, f"{cls.name}.{member}"
            elif isinstance(item, ast.AnnAssign):                                        # struct field
                assert hasattr(real(), item.target.id), f"{cls.name}.{item.target.id}"  # type: ignore[attr-defined]


def test_native_handle_getter_where_the_stub_says():
    bindings = _module("cuda.bindings")
    major_minor = tuple(int(v) for v in bindings.__version__.split(".")[:2])
    if major_minor < (12, 9):
        pytest.skip(f"cuda-bindings {bindings.__version__}: no utils module (runtime/cudart.py falls back to int())")
    utils = _module("cuda.bindings.utils")
    rt = _module("cuda.bindings.runtime")
    assert utils.get_cuda_native_handle(rt.cudaStream_t(1234)) == 1234
