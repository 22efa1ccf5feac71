"""`make gpu-check`: what a user with TensorRT and an NVIDIA GPU runs to check this toolkit on their machine.

Builds the 12 engines FP32 / FP16 / INT8 x plugin / ONNX NMS x static / dynamic batch of shapes_d0, runs each
through `Detector`, compares it with the same ONNX file on ONNX Runtime (compare's numbers and limits:
runtime/parity.py), times it (runtime/benchmark.py), runs the `cuda` and `tensorrt` pytest tiers, and writes
gpu-check/report.md with the TensorRT, CUDA, driver and GPU versions and PASS / FAIL / INCONCLUSIVE per engine.
Without TensorRT, cuda-python, a GPU or ModelOpt: one line saying what is missing, exit 2. Exit 1 on any FAIL, 3 on any
INCONCLUSIVE (and no FAIL), 0 when everything passed.

    python tools/gpu_check.py [--output gpu-check] [--images 16] [--iterations 50]
"""
from __future__ import annotations

import argparse
import importlib.util
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from runtime.errors import DeployError  # noqa: E402

PRECISIONS = ("fp32", "fp16", "int8")
NMS_KINDS = ("efficient", "onnx")
BATCH_MODES = {"static": None, "dynamic": (1, 2, 4)}
TIERS = "cuda or tensorrt"
TIERS_TIMEOUT_S = 3600


@dataclass(frozen=True)
class Case:
    precision: str
    nms: str
    batch_mode: str
    dla_core: int | None = None

    @property
    def name(self) -> str:
        dla = "" if self.dla_core is None else f"-dla{self.dla_core}"
        return f"{self.precision}-{'plugin' if self.nms == 'efficient' else 'onnx'}nms-{self.batch_mode}{dla}"

    @property
    def onnx_case(self) -> Case:
        """The case whose ONNX file this engine is built from (DLA engines reuse the GPU cases' files)."""
        return Case(self.precision, self.nms, self.batch_mode)


CASES = [Case(p, n, b) for p in PRECISIONS for n in NMS_KINDS for b in BATCH_MODES]
# On a device with DLA cores (Jetson Orin): the FP16 and INT8 files once more on DLA core 0 (GPU fallback for
# what DLA cannot run), so `build --dla-core`'s settings are checked where they matter.
DLA_CASES = [Case(p, "efficient", "static", 0) for p in ("fp16", "int8")]


def all_cases(dla_cores: int) -> list[Case]:
    return CASES + (DLA_CASES if dla_cores > 0 else [])


@dataclass
class Row:
    """One engine's line in the report."""
    name: str
    verdict: str                                  # PASS / FAIL / INCONCLUSIVE
    reasons: list[str] = field(default_factory=list)
    numbers: dict[str, float] = field(default_factory=dict)
    built: str = "-"                              # how TensorRT built it (sidecar: strong typing, builder flags)


def missing() -> str | None:
    """What this machine lacks for the check (None: TensorRT, cuda-python and a GPU are all there)."""
    from runtime.gpu import cuda_device_count
    from runtime.trt_compat import require_tensorrt

    lacking = []
    try:
        require_tensorrt()
    except DeployError as e:
        lacking.append(str(e))
    try:
        import runtime.cudart  # noqa: F401  (cuda-python's runtime bindings)
    except DeployError as e:
        lacking.append(str(e))
    if cuda_device_count() == 0:
        lacking.append("no NVIDIA GPU visible to the driver (libcuda)")
    if importlib.util.find_spec("modelopt") is None:
        lacking.append("the FP16/INT8 files need NVIDIA ModelOpt: pip install 'efficientdet-deploy[int8]'")
    return "; ".join(lacking) or None


def environment() -> dict[str, str]:
    """TensorRT, CUDA runtime, driver and GPU versions, as reported by the libraries themselves."""
    import tensorrt as trt

    from runtime import cudart
    from runtime.trt_compat import cuda_text

    import onnxruntime

    from runtime.gpu import driver_release

    name, cc = cudart.device_properties(0)
    driver = driver_release()               # the kernel module's /proc file; none on Jetson: ask nvidia-smi
    if driver == "unknown":
        try:
            driver = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                    capture_output=True, text=True, timeout=30).stdout.strip().splitlines()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            driver = "unknown (no /proc/driver/nvidia/version, no nvidia-smi)"
    return {"TensorRT": trt.__version__, "CUDA runtime (cuda-python)": cuda_text(cudart.runtime_version()),
            "CUDA supported by the driver": cuda_text(cudart.driver_version()), "NVIDIA driver": driver,
            "GPU": f"{name} (sm {cc})", "ONNX Runtime (the reference)": f"{onnxruntime.__version__} CPU",
            "Python": sys.version.split()[0]}


def dla_cores() -> int:
    """DLA cores TensorRT's builder sees here (IBuilder.num_DLA_cores, 8.6-11.x; 0 on data-center GPUs)."""
    import tensorrt as trt

    from runtime.trt_messages import TrtMessages

    try:
        return int(trt.Builder(TrtMessages().trt_logger()).num_DLA_cores)
    except TypeError:        # no builder (createInferBuilder returned null): each engine's build says why
        return 0


def make_onnx(out: Path, calib_images: int) -> dict[Case, Path | str]:
    """The 12 ONNX files: shapes_d0 exported per NMS kind and batch mode, then FP16 and INT8 (Q/DQ) of each.
    A file that fails is its error text instead of a path: its engine is a FAIL row, the others still run."""
    from calibration.artifacts import QuantizeSettings, quantize_onnx
    from effdet.synthetic import write_dataset
    from export.onnx_export import export_onnx
    from export.settings import ExportSettings

    calib = out / "calibration-images"
    if not calib.is_dir():
        write_dataset(calib, calib_images, 2, progress=False)
    files: dict[Case, Path | str] = {}
    for nms in NMS_KINDS:
        for mode, dynamic in BATCH_MODES.items():
            stem = out / f"shapes_d0.{nms}.{mode}"
            fp32 = _made(lambda: export_onnx(ExportSettings(model="shapes_d0", output=Path(f"{stem}.fp32.onnx"),
                                                            nms=nms, dynamic_batch=dynamic, score_threshold=0.05)))
            files[Case("fp32", nms, mode)] = fp32
            if isinstance(fp32, str):                    # no FP32 file: its FP16 and INT8 fail with its reason
                files[Case("fp16", nms, mode)] = files[Case("int8", nms, mode)] = fp32
                continue
            source = fp32
            files[Case("fp16", nms, mode)] = _made(
                lambda: quantize_onnx(QuantizeSettings(source, Path(f"{stem}.fp16.onnx"))))
            files[Case("int8", nms, mode)] = _made(lambda: quantize_onnx(QuantizeSettings(
                source, Path(f"{stem}.int8.onnx"), precision="int8", calib_dir=calib, calib_images=calib_images)))
    return files


def _made(make: Callable[[], Path]) -> Path | str:
    """The file `make` writes, or why it could not be made (reported in that engine's row)."""
    try:
        return make()
    except Exception as e:    # one file's failure must not cost the other engines their check
        return f"making the ONNX file failed: {type(e).__name__}: {e}"


def check_engine(case: Case, onnx: Path | str, images: list, iterations: int) -> Row:
    """Build, compare with ONNX Runtime on the same file, time; any error is a FAIL with its message (a timing
    failure keeps the comparison's numbers)."""
    from effdet_deploy.benchmarking import bench_model
    from export.build_plan import BuildSettings, describe_precision
    from export.engine_build import engine_from_onnx
    from runtime.detector import Detector
    from runtime.engine_sidecar import read_sidecar
    from runtime.parity import compare_detections

    if isinstance(onnx, str):
        return Row(case.name, "FAIL", [onnx])
    try:
        t0 = time.perf_counter()
        suffix = ".engine" if case.dla_core is None else f".dla{case.dla_core}.engine"
        engine = engine_from_onnx(BuildSettings(onnx=onnx, engine=onnx.with_suffix(suffix), dla_core=case.dla_core,
                                                detailed_profiling=True))
        build_s = time.perf_counter() - t0
        side = read_sidecar(engine)
        built = describe_precision(bool(side.get("strongly_typed")), list(side.get("builder_flags") or [])) + (
            f", {side['fp32_layers_pinned']} FP32 layers pinned" if side.get("fp32_layers_pinned") else "")
        with Detector(onnx) as ort, Detector(engine) as trt:
            parity = compare_detections(case.name, case.precision, ort.detect(images), trt.detect(images))
            layers, inspected = _layer_information(trt.backend)
    except Exception as e:    # report it and go on with the other engines
        return Row(case.name, "FAIL", [f"{type(e).__name__}: {e}"])
    int8_convs, convs = conv_precisions(layers)
    row = Row(case.name, parity.verdict, parity.reasons() + inspected, {
        "F1": parity.agreement.f1, "max box error px": parity.boxes.max_abs,
        "max score error": parity.scores.max_abs, "build s": build_s}, built)
    if convs:
        row.numbers.update({"INT8 convs": float(int8_convs), "convs": float(convs)})
    if case.precision == "int8" and convs and not int8_convs:
        row.verdict = "FAIL"
        row.reasons.append(f"no INT8 convolution among the engine's {convs}: the Q/DQ did not fuse (slower than "
                           "the FP16 engine)")
    batch = 4 if case.batch_mode == "dynamic" else 1
    try:
        bench, _ = bench_model(str(engine), batch, warmup=10, iterations=iterations)
    except Exception as e:
        row.verdict = "FAIL"
        row.reasons.append(f"timing failed: {type(e).__name__}: {e}")
        return row
    row.numbers.update({"batch": float(batch), "median ms": bench.total.median, "p99 ms": bench.total.p99,
                        "images/s": bench.throughput})
    if "gpu_compute" in bench.phases:          # the engine alone (CUDA events around enqueueV3)
        row.numbers["GPU compute ms"] = bench.phases["gpu_compute"].median
    return row


def _layer_information(backend: object) -> tuple[str, list[str]]:
    """(IEngineInspector JSON, []) or ("", [why not]): a missing inspection never costs the row its comparison."""
    from runtime.backends.tensorrt_backend import TensorRTBackend

    if not isinstance(backend, TensorRTBackend):
        return "", ["not a TensorRT backend: no layer information"]
    try:
        return backend.layer_information(), []
    except Exception as e:
        return "", [f"layer information unavailable ({type(e).__name__}: {e})"]


def conv_precisions(layer_json: str) -> tuple[int, int]:
    """(convolutions reading INT8, convolutions) from IEngineInspector's JSON of a detailed-profiling engine:
    layers whose LayerType names a convolution, INT8 when their first input's Format/Datatype says Int8 (the
    keys trtexec --exportLayerInfo and Polygraphy's inspect read). (0, 0) when the JSON has no such detail."""
    import json

    try:
        layers = json.loads(layer_json).get("Layers", []) if layer_json else []
    except (ValueError, AttributeError):
        return 0, 0
    convs = [layer for layer in layers if isinstance(layer, dict)
             and "CONV" in str(layer.get("LayerType", "")).upper()]
    int8 = [layer for layer in convs if layer.get("Inputs")
            and "INT8" in str(layer["Inputs"][0].get("Format/Datatype", "")).upper()]
    return len(int8), len(convs)


def run_tiers() -> Row:
    """The `cuda` and `tensorrt` pytest tiers; nothing collected, or nothing passed (all skipped), is
    INCONCLUSIVE with pytest's skip reasons, not a pass; a hang past TIERS_TIMEOUT_S is a FAIL."""
    name = f"pytest -m '{TIERS}'"
    try:
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-m", TIERS], cwd=ROOT,
                              capture_output=True, text=True, timeout=TIERS_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return Row(name, "FAIL", [f"did not finish in {TIERS_TIMEOUT_S} s"])
    return tiers_row(name, proc.returncode, proc.stdout)


def tiers_row(name: str, returncode: int, stdout: str) -> Row:
    """pytest's exit code and summary -> a Row: PASS needs exit 0 and at least one test passed."""
    lines = stdout.strip().splitlines() or ["(no output)"]
    passed = sum(int(n) for n in re.findall(r"(\d+) passed", lines[-1]))
    if returncode not in (0, 5):
        return Row(name, "FAIL", [lines[-1]])
    if returncode == 0 and passed:
        return Row(name, "PASS", [lines[-1]])
    skips = [line.split("] ", 1)[-1] for line in lines if line.startswith("SKIPPED")][:5]
    return Row(name, "INCONCLUSIVE", [f"no test passed: {lines[-1]}", *skips])


def exit_code(rows: list[Row]) -> int:
    """1 if anything failed, else 3 if anything (or everything: no rows) proved nothing, else 0."""
    verdicts = {r.verdict for r in rows}
    if "FAIL" in verdicts:
        return 1
    return 3 if not rows or "INCONCLUSIVE" in verdicts else 0


NUMBER_COLUMNS = ("F1", "max box error px", "max score error", "batch", "median ms", "p99 ms", "GPU compute ms",
                  "images/s", "INT8 convs", "convs", "build s")


def report_markdown(env: dict[str, str], rows: list[Row], tiers: Row | None, planned: int = len(CASES)) -> str:
    """gpu-check/report.md: versions, one table row per engine (how it was built, its numbers), the test tiers,
    and why each non-PASS is so. Written after every engine: until the tiers ran, Overall is INCOMPLETE."""
    lines = ["# effdet-deploy gpu-check", "", *[f"- {k}: {v}" for k, v in env.items()], "",
             "Reference: the same ONNX file on ONNX Runtime; limits per precision from runtime/parity.py. "
             "median/p99 ms: a whole detect() call (preprocessing, engine, post-processing); GPU compute ms: "
             "the engine alone (CUDA events).", "",
             "| engine | verdict | built | " + " | ".join(NUMBER_COLUMNS) + " |",
             "|---|---|---|" + "---|" * len(NUMBER_COLUMNS)]
    for r in rows:
        cells = [f"{r.numbers[c]:.4g}" if c in r.numbers else "-" for c in NUMBER_COLUMNS]
        lines.append(f"| {r.name} | {r.verdict} | {r.built} | " + " | ".join(cells) + " |")
    done = rows + ([tiers] if tiers else [])
    lines += ["", f"Test tiers ({tiers.name}): {tiers.verdict}: {'; '.join(tiers.reasons)}" if tiers
              else f"Test tiers: not run yet ({len(rows)} of {planned} engines checked)", ""]
    for r in done:
        if r.verdict != "PASS":
            lines.append(f"- {r.name}: {r.verdict}: {'; '.join(r.reasons) or 'no reason recorded'}")
    overall = {0: "PASS", 1: "FAIL", 3: "INCONCLUSIVE"}[exit_code(done)] if tiers else "INCOMPLETE"
    return "\n".join(lines + ["", f"Overall: {overall}", ""])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("gpu-check"))
    parser.add_argument("--images", type=int, default=16, help="generated scenes compared per engine")
    parser.add_argument("--iterations", type=int, default=50, help="timed iterations per engine")
    parser.add_argument("--calib-images", type=int, default=64)
    args = parser.parse_args(argv)
    why = missing()
    if why:
        print(f"gpu-check: cannot run here: {why}", file=sys.stderr)
        return 2
    from effdet.synthetic import render
    from runtime.atomic import write_atomic

    args.output.mkdir(parents=True, exist_ok=True)
    report = args.output / "report.md"
    report.unlink(missing_ok=True)          # an earlier run's report must not pass for this one's
    env = environment()
    cores = dla_cores()
    cases = all_cases(cores)
    env["DLA cores"] = str(cores)
    print(f"gpu-check on {env['GPU']}, TensorRT {env['TensorRT']}: exporting the 12 ONNX files ...")
    files = make_onnx(args.output, args.calib_images)
    images = [render(11, i).image for i in range(args.images)]
    rows: list[Row] = []
    for case in cases:
        rows.append(check_engine(case, files[case.onnx_case], images, args.iterations))
        print(f"  {case.name}: {rows[-1].verdict}")
        write_atomic(report, report_markdown(env, rows, None, len(cases)))   # what is known, if a later step dies
    tiers = run_tiers()
    write_atomic(report, report_markdown(env, rows, tiers, len(cases)))
    print(f"wrote {report}")
    return exit_code(rows + [tiers])


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except DeployError as e:
        print(f"gpu-check: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
