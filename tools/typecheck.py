"""`make typecheck`: mypy over the TensorRT/CUDA modules (pyproject's [tool.mypy] files), then three checks
that make the result mean something where TensorRT cannot run:

1. coverage: every module under our packages that imports tensorrt or CUDA is in mypy's file list;
2. typed share: `mypy --any-exprs-report` per module; a TensorRT/CUDA module below 97% typed
   expressions fails (an `Any` there is a call mypy cannot check);
3. deliberate misuse: one wrong TensorRT/CUDA call per module (MISUSES) checked through mypy's
   --shadow-file; each must be reported, or the check is not looking at that module.

Usage: python tools/typecheck.py   (exit 0 all good, 1 a check failed)
"""
from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MIN_SHARE = 97.0
PACKAGES = ("runtime", "export", "calibration", "effdet_deploy", "tools")
CALLS_TRT_OR_CUDA = re.compile(r"^\s*(import tensorrt|from cuda\b|import cuda\b|from runtime import cudart"
                               r"|from runtime\.cudart|from runtime\.cuda_memory)|CDLL\(\s*[\"']libcud", re.M)

# module path -> (a correct TensorRT/CUDA call in it, the same call misused). Keep each snippet in sync
# with its module: a snippet that is no longer there fails the check loudly.
MISUSES: dict[str, tuple[str, str]] = {
    "runtime/cudart.py": ("rt.cudaMemcpyAsync(dst, src, nbytes, kind, stream)",
                          "rt.cudaMemcpyAsync(dst, src, kind, nbytes, stream)"),
    "runtime/cuda_memory.py": ("cudart.copy_to_device(self.device_ptr, self.host_ptr, nbytes, stream)",
                               "cudart.copy_to_device(self.device_ptr, self.host_ptr, stream)"),
    "runtime/gpu.py": ("lib.cuDeviceGetCount(ctypes.byref(count))", "lib.cuDeviceGetCount(count)"),
    "runtime/trt_compat.py": ("trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH",
                              "trt.NetworkDefinitionCreationFlag.EXPLICT_BATCH"),
    "runtime/trt_messages.py": ("trt.ILogger.__init__(self)", "trt.ILogger.__init__(self, 2)"),
    "runtime/backends/tensorrt_backend.py": ("context.execute_async_v3(self.stream)",   # 8.x API, gone in 10
                                             "context.execute_async_v2(self.stream)"),
    "export/engine_build.py": ("builder.create_builder_config()", "builder.create_builder_config(1)"),
    "calibration/legacy.py": ("trt.IInt8MinMaxCalibrator.__init__(self)",
                              "trt.IInt8MinMaxCalibrator.__init__(self, 0)"),
    "tools/gpu_check.py": ("cudart.device_properties(0)", "cudart.device_properties(\"0\")"),
    "export/layer_marks.py": ("network.mark_output(tensor)", "network.mark_output(tensor.name)"),
}


def mypy(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mypy", *args], cwd=ROOT, capture_output=True, text=True)


def checked_files() -> list[str]:
    return list(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]["files"])


def trt_cuda_modules() -> list[str]:
    """Paths of our modules that call TensorRT or CUDA (tensorrt / cuda-python / our CUDA wrappers / ctypes)."""
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if CALLS_TRT_OR_CUDA.search(path.read_text()):
                found.append(path.relative_to(ROOT).as_posix())
    return found


def module_name(path: str) -> str:
    return path.removesuffix(".py").replace("/", ".")


def parse_shares(report: str) -> dict[str, float]:
    """any-exprs.txt -> {module: typed share in percent} (rows 'name anys exprs coverage%')."""
    shares = {}
    for line in report.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[3].endswith("%") and parts[0] != "Total":
            shares[parts[0]] = float(parts[3].rstrip("%"))
    return shares


def share_failures(shares: dict[str, float], gated: list[str]) -> list[str]:
    """Gated modules below MIN_SHARE or missing from the report."""
    bad = []
    for name in gated:
        if name not in shares:
            bad.append(f"{name}: not in mypy's report")
        elif shares[name] < MIN_SHARE:
            bad.append(f"{name}: {shares[name]:.2f}% typed expressions (< {MIN_SHARE:.0f}%)")
    return bad


def misuse_failures(gated_paths: list[str]) -> list[str]:
    """Run mypy once with every module replaced by its misused copy; each must get an error."""
    bad, shadows = [], []
    tmp = Path(tempfile.mkdtemp(prefix="misuse-"))
    for path in gated_paths:
        if path not in MISUSES:
            bad.append(f"{path}: no deliberate-misuse entry in tools/typecheck.py MISUSES")
            continue
        good, wrong = MISUSES[path]
        text = (ROOT / path).read_text()
        if good not in text:
            bad.append(f"{path}: misuse snippet {good!r} not found (update MISUSES)")
            continue
        shadow = tmp / path.replace("/", "__")
        shadow.write_text(text.replace(good, wrong, 1))
        shadows += ["--shadow-file", path, str(shadow)]
    out = mypy("--cache-dir", str(tmp / "cache"), *shadows).stdout   # own cache: never mixes with the real one
    for path in gated_paths:
        if path in MISUSES and not re.search(rf"^{re.escape(path)}:\d+: error", out, re.M):
            bad.append(f"{path}: the misuse {MISUSES[path][1]!r} was NOT reported by mypy")
    return bad


def main() -> int:
    result = mypy()
    print(result.stdout.strip())
    if result.returncode != 0:
        return 1
    files, trt_paths = checked_files(), trt_cuda_modules()
    problems = [f"{p}: calls TensorRT/CUDA but is not in [tool.mypy] files" for p in trt_paths if p not in files]
    with tempfile.TemporaryDirectory() as report_dir:
        mypy("--any-exprs-report", report_dir)
        shares = parse_shares((Path(report_dir) / "any-exprs.txt").read_text())
    gated = [p for p in files if p in trt_paths]
    print(f"typed expressions per module (>= {MIN_SHARE:.0f}% required where TensorRT/CUDA is called):")
    for path in files:
        name = module_name(path)
        flag = "gated" if path in gated else "report only"
        print(f"  {name:40s} {shares.get(name, float('nan')):7.2f}%  ({flag})")
    problems += share_failures(shares, [module_name(p) for p in gated])
    problems += misuse_failures(gated)
    if problems:
        print("typecheck FAILED:\n  " + "\n  ".join(problems))
        return 1
    print(f"typecheck passed: {len(gated)} TensorRT/CUDA modules >= {MIN_SHARE:.0f}% typed, "
          "each module's deliberate misuse reported")
    return 0


if __name__ == "__main__":
    sys.exit(main())
