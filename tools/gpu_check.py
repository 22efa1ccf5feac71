"""`make gpu-check`: what a user with TensorRT and an NVIDIA GPU runs to check this toolkit on their machine.

Builds the 12 engines FP32 / FP16 / INT8 x plugin / ONNX NMS x static / dynamic batch of shapes_d0 (the INT8 file
in the form for the installed TensorRT), runs each through `Detector`, compares it with the same ONNX file on ONNX
Runtime where one imports (compare's numbers and limits: runtime/parity.py), proves each INT8 engine's fusion from
its layer information (tools/fusion_check.py), times it (runtime/benchmark.py), runs the `cuda` and `tensorrt`
pytest tiers, and writes gpu-check/report.md with the TensorRT, CUDA, driver and GPU versions, PASS / FAIL /
INCONCLUSIVE per engine and FP16 vs INT8 engine time side by side. Without TensorRT, cuda-python, a GPU or
ModelOpt, or with CUDA versions that do not fit: one line saying what is missing, exit 2. Exit 1 on any FAIL, 3
on any INCONCLUSIVE (and no FAIL), 0 when everything passed.

    python tools/gpu_check.py [--output gpu-check] [--images 16] [--iterations 50] [--layers]
"""
from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from runtime.errors import DeployError  # noqa: E402
from tools.gpu_report import Row, exit_code, report_markdown, tiers_row  # noqa: E402,F401

PRECISIONS = ("fp32", "fp16", "int8")
NMS_KINDS = ("efficient", "onnx")
BATCH_MODES = {"static": None, "dynamic": (1, 2, 4)}
TIERS = "cuda or tensorrt"
TIERS_TIMEOUT_S = 3600
NO_ORT = "no ONNX Runtime imports here, so the engines are not compared with the ONNX preview (pip install onnxruntime)"


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
    elif not lacking:
        lacking += cuda_versions_problem()
    if importlib.util.find_spec("modelopt") is None:
        lacking.append("the FP16/INT8 files need NVIDIA ModelOpt: pip install 'nvidia-modelopt[onnx]' (our [int8] extra)")
    return "; ".join(lacking) or None


def cuda_versions_problem() -> list[str]:
    """The designed one line when driver, cuda-python's CUDA runtime and TensorRT's CUDA do not fit, asked
    before anything touches the device (cudaGetDeviceProperties would fail with a bare
    cudaErrorInsufficientDriver)."""
    from runtime.backends.tensorrt_backend import check_cuda_versions
    from runtime.trt_compat import require_tensorrt

    try:
        check_cuda_versions(require_tensorrt())
    except DeployError as e:
        return [str(e)]
    return []


def onnxruntime_version() -> str | None:
    """ONNX Runtime's version where one imports (any wheel: onnxruntime-gpu, onnxruntime, a Jetson build), else
    None: then the engines are not compared with the ONNX preview, and the report says so."""
    if importlib.util.find_spec("onnxruntime") is None:
        return None
    import onnxruntime

    return str(onnxruntime.__version__)


def environment() -> dict[str, str]:
    """TensorRT, CUDA runtime, driver and GPU versions, as reported by the libraries themselves."""
    import tensorrt as trt

    from runtime import cudart
    from runtime.trt_compat import cuda_text

    from runtime.gpu import driver_release

    name, cc = cudart.device_properties(0)       # main() ran missing(), CUDA versions included, before this
    ort = onnxruntime_version()
    driver = driver_release()               # the kernel module's /proc file; none on Jetson: ask nvidia-smi
    if driver == "unknown":
        try:
            driver = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                    capture_output=True, text=True, timeout=30).stdout.strip().splitlines()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            driver = "unknown (no /proc/driver/nvidia/version, no nvidia-smi)"
    return {"TensorRT": trt.__version__, "CUDA runtime (cuda-python)": cuda_text(cudart.runtime_version()),
            "CUDA supported by the driver": cuda_text(cudart.driver_version()), "NVIDIA driver": driver,
            "GPU": f"{name} (sm {cc})", "ONNX Runtime (the reference)": NO_ORT if ort is None else f"{ort} CPU",
            "Python": sys.version.split()[0]}


def dla_cores() -> int:
    """DLA cores TensorRT's builder sees here (IBuilder.num_DLA_cores, 8.6-11.x; 0 on data-center GPUs)."""
    import tensorrt as trt

    from runtime.trt_messages import TrtMessages

    try:
        return int(trt.Builder(TrtMessages().trt_logger()).num_DLA_cores)
    except TypeError:        # no builder (createInferBuilder returned null): each engine's build says why
        return 0


def make_onnx(out: Path, calib_images: int, trt_version: str) -> dict[Case, Path | str]:
    """The 12 ONNX files: shapes_d0 exported per NMS kind and batch mode, then FP16 and INT8 (Q/DQ, in the form
    for this TensorRT) of each. A file that fails is its error text instead of a path: its engine is a FAIL row,
    the others still run."""
    from calibration.artifacts import QuantizeSettings, quantize_onnx
    from effdet.synthetic import write_dataset
    from export.onnx_export import export_onnx
    from export.settings import ExportSettings

    calib = out / "calibration-images"
    if not calib.is_dir():
        write_dataset(calib, calib_images, 2, progress=False)
    target = quantize_trt_version(trt_version)
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
                source, Path(f"{stem}.int8.onnx"), precision="int8", calib_dir=calib, calib_images=calib_images,
                trt_version=target)))
    return files


def quantize_trt_version(trt_version: str) -> str:
    """quantize's --trt-version for the installed TensorRT ('8.6.2.3' -> '8.6': the FP32 opset-17 INT8 form;
    '10.3.0' -> '10.3': ModelOpt's FP16 form)."""
    from runtime.trt_compat import version_tuple

    return ".".join(map(str, version_tuple(trt_version)))


def _made(make: Callable[[], Path]) -> Path | str:
    """The file `make` writes, or why it could not be made (reported in that engine's row)."""
    try:
        return make()
    except Exception as e:    # one file's failure must not cost the other engines their check
        return f"making the ONNX file failed: {type(e).__name__}: {e}"


def skip_reason(case: Case, trt_version: str) -> str | None:
    """Why this TensorRT cannot build the case at all (the build refuses it: export/build_plan.py), else None."""
    from export.build_plan import BuildSettings, check_dla_qdq

    try:
        check_dla_qdq(BuildSettings(onnx=Path(f"{case.name}.onnx"), engine=Path("-"), dla_core=case.dla_core),
                      case.precision == "int8", trt_version)
    except DeployError as e:
        return str(e).split(": ", 1)[-1]
    return None


def check_engine(case: Case, onnx: Path | str, images: list, iterations: int, compare: bool = True) -> Row:
    """Build, compare with ONNX Runtime on the same file (when `compare`), prove an INT8 engine's fusion, time;
    any error is a FAIL with its message (a timing failure keeps the comparison's numbers)."""
    if isinstance(onnx, str):
        return Row(case.name, "FAIL", [onnx])
    try:
        row, engine, layer_json = _build_and_compare(case, onnx, images, compare)
    except Exception as e:    # report it and go on with the other engines
        return Row(case.name, "FAIL", [f"{type(e).__name__}: {e}"])
    _judge_layers(row, case, onnx, layer_json)
    _time(row, engine, 4 if case.batch_mode == "dynamic" else 1, iterations)
    return row


def _build_and_compare(case: Case, onnx: Path, images: list, compare: bool) -> tuple[Row, Path, str]:
    """The engine built (with detailed profiling, for its layer information), run, compared where ORT imports."""
    from export.build_plan import BuildSettings, describe_precision
    from export.engine_build import engine_from_onnx
    from runtime.detector import Detector
    from runtime.engine_sidecar import read_sidecar
    from runtime.parity import compare_detections

    t0 = time.perf_counter()
    suffix = ".engine" if case.dla_core is None else f".dla{case.dla_core}.engine"
    engine = engine_from_onnx(BuildSettings(onnx=onnx, engine=onnx.with_suffix(suffix), dla_core=case.dla_core,
                                            detailed_profiling=True))
    build_s = time.perf_counter() - t0
    side = read_sidecar(engine)
    built = describe_precision(bool(side.get("strongly_typed")), list(side.get("builder_flags") or [])) + (
        f", {side['fp32_layers_pinned']} FP32 layers pinned" if side.get("fp32_layers_pinned") else "")
    with Detector(engine) as trt:
        detections = trt.detect(images)
        layer_json, inspected = _layer_information(trt.backend)
    if not compare:
        return Row(case.name, "INCONCLUSIVE", [f"not compared: {NO_ORT}", *inspected], {"build s": build_s},
                   built), engine, layer_json
    with Detector(onnx) as ort:
        parity = compare_detections(case.name, case.precision, ort.detect(images), detections)
    return Row(case.name, parity.verdict, parity.reasons() + inspected, {
        "F1": parity.agreement.f1, "max box error px": parity.boxes.max_abs,
        "max score error": parity.scores.max_abs, "build s": build_s}, built), engine, layer_json


def _judge_layers(row: Row, case: Case, onnx: Path, layer_json: str) -> None:
    """Convolution counts for every engine; for INT8 the fusion verdict (tools/fusion_check.py): a failure FAILs
    the row, no layer detail leaves it at most INCONCLUSIVE, standalone layers are listed."""
    from export.qdq_graph import file_qdq_of

    from tools.fusion_check import engine_layers, fusion, is_conv, reads_int8

    layers = engine_layers(layer_json)
    convs = [layer for layer in layers if is_conv(layer)]
    if convs:
        row.numbers.update({"INT8 convs": float(sum(map(reads_int8, convs))), "convs": float(len(convs))})
    if case.precision != "int8":
        return
    if not layers:
        row.verdict = "FAIL" if row.verdict == "FAIL" else "INCONCLUSIVE"
        row.reasons.append("INT8 fusion not proven: the engine's layer information has no detail")
        return
    verdict = fusion(layers, file_qdq_of(onnx))
    row.numbers.update({"INT8 convs": float(verdict.int8_convs), "quantized convs": float(verdict.quantized_convs)})
    row.numbers["standalone Q/DQ/Cast"] = float(len(verdict.standalone))
    row.notes += [f"standalone {kind}: {name}" for kind, name in verdict.standalone]
    if not verdict:
        row.verdict = "FAIL"
        row.reasons += list(verdict.failures)


def _time(row: Row, engine: Path, batch: int, iterations: int) -> None:
    """Median/p99 of the whole detect() call and the engine's own GPU compute (CUDA events around enqueueV3)."""
    from effdet_deploy.benchmarking import bench_model

    try:
        bench, _ = bench_model(str(engine), batch, warmup=10, iterations=iterations)
    except Exception as e:
        row.verdict = "FAIL"
        row.reasons.append(f"timing failed: {type(e).__name__}: {e}")
        return
    row.numbers.update({"batch": float(batch), "median ms": bench.total.median, "p99 ms": bench.total.p99,
                        "images/s": bench.throughput})
    if "gpu_compute" in bench.phases:
        row.numbers["GPU compute ms"] = bench.phases["gpu_compute"].median


def _layer_information(backend: object) -> tuple[str, list[str]]:
    """(IEngineInspector JSON, []) or ("", [why not]): a missing inspection never costs the row its comparison."""
    from runtime.backends.tensorrt_backend import TensorRTBackend

    if not isinstance(backend, TensorRTBackend):
        return "", ["not a TensorRT backend: no layer information"]
    try:
        return backend.layer_information(), []
    except Exception as e:
        return "", [f"layer information unavailable ({type(e).__name__}: {e})"]


def layer_rows(files: dict[Case, Path | str], images: list, out: Path) -> list[Row]:
    """`--layers`: the FP16 and INT8 plugin engines, layer by layer against the FP32 file (tools/gpu_layers.py)."""
    from tools.gpu_layers import layerwise_row

    fp32 = files[Case("fp32", "efficient", "static")]
    rows = []
    for precision in ("fp16", "int8"):
        onnx = files[Case(precision, "efficient", "static")]
        if isinstance(onnx, str) or isinstance(fp32, str):
            rows.append(Row(f"{precision} layer-wise", "FAIL", [str(onnx if isinstance(onnx, str) else fp32)]))
            continue
        rows.append(layerwise_row(f"{precision}-pluginnms-static", onnx, fp32, images, out))
        print(f"  {rows[-1].name}: {rows[-1].verdict}")
    return rows


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("gpu-check"))
    parser.add_argument("--images", type=int, default=16, help="generated scenes compared per engine")
    parser.add_argument("--iterations", type=int, default=50, help="timed iterations per engine")
    parser.add_argument("--calib-images", type=int, default=64)
    parser.add_argument("--layers", action="store_true", help="also rebuild the FP16 and INT8 plugin engines with every "
                        "FP32 tensor marked as an output and compare them layer by layer (tools/gpu_layers.py)")
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
    trt_version = env["TensorRT"]
    print(f"gpu-check on {env['GPU']}, TensorRT {trt_version}: exporting the 12 ONNX files ...")
    files = make_onnx(args.output, args.calib_images, trt_version)
    images = [render(11, i).image for i in range(args.images)]
    compare = onnxruntime_version() is not None
    rows: list[Row] = []
    for case in cases:
        why_not = skip_reason(case, trt_version)
        rows.append(Row(case.name, "SKIPPED", [why_not]) if why_not else
                    check_engine(case, files[case.onnx_case], images, args.iterations, compare))
        print(f"  {case.name}: {rows[-1].verdict}")
        write_atomic(report, report_markdown(env, rows, None, len(cases)))   # what is known, if a later step dies
    if args.layers and compare:
        rows += layer_rows(files, images, args.output)
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
