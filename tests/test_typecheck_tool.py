"""tools/typecheck.py (make typecheck): its report parsing and 97% rule, and the repository facts it
enforces that need no mypy run (every TensorRT/CUDA module is type-checked and has a misuse entry)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("typecheck_tool", ROOT / "tools" / "typecheck.py")
assert spec is not None and spec.loader is not None
tool = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tool)

REPORT = """\
                             Name   Anys   Exprs   Coverage
-----------------------------------------------------------
runtime.backends.tensorrt_backend      8     844     99.05%
              runtime.cuda_memory     77     305     74.75%
-----------------------------------------------------------
                            Total     85    1149     92.60%
"""


def test_report_is_parsed_per_module():
    assert tool.parse_shares(REPORT) == {"runtime.backends.tensorrt_backend": 99.05, "runtime.cuda_memory": 74.75}


def test_modules_below_97_percent_or_missing_fail():
    shares = tool.parse_shares(REPORT)
    bad = tool.share_failures(shares, ["runtime.backends.tensorrt_backend", "runtime.cuda_memory", "runtime.cudart"])
    assert bad == ["runtime.cuda_memory: 74.75% typed expressions (< 97%)", "runtime.cudart: not in mypy's report"]


def test_every_tensorrt_cuda_module_is_type_checked_and_has_a_live_misuse():
    modules = tool.trt_cuda_modules()
    assert {"runtime/cudart.py", "runtime/backends/tensorrt_backend.py", "runtime/trt_compat.py"} <= set(modules)
    files = tool.checked_files()
    for path in modules:
        assert path in files, f"{path} calls TensorRT/CUDA but mypy does not check it"
        good, wrong = tool.MISUSES[path]
        assert good in (ROOT / path).read_text() and good != wrong, path
