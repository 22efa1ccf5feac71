"""`pipeline`: weights -> every artifact -> parity, speed, accuracy -> report.md + plots + summary.json.

Each step is a small function over a shared `Run` record, so the report says what ran, what was
skipped and why (no TensorRT here, no calibration images, ...). Nothing is claimed that did not run.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from runtime.atomic import write_atomic
from runtime.errors import DeployError
from runtime.log import logger


@dataclass(frozen=True)
class PipelineSettings:
    model: str = "shapes_d0"
    output: Path = Path("pipeline-output")
    checkpoint: Path | None = None
    image_size: int | None = None
    calib_dir: Path | None = None
    calib_images: int = 128
    images: Path | None = None               # eval images (with --annotations)
    annotations: Path | None = None
    eval_images: int = 100                   # generated validation images for shapes models
    compare_images: int = 12
    bench_iterations: int = 10


@dataclass
class Run:
    settings: PipelineSettings
    reference: str = ""                                       # what PyTorch loads (checkpoint or shipped name)
    artifacts: dict[str, Path] = field(default_factory=dict)  # label -> file
    parity: dict[str, dict[str, Any]] = field(default_factory=dict)
    bench: dict[str, dict[str, Any]] = field(default_factory=dict)
    accuracy: dict[str, dict[str, float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    pictures: list[str] = field(default_factory=list)


def _torch_options(run: Run) -> dict[str, Any]:
    """How the PyTorch backend must load the reference: the architecture and the export size."""
    options: dict[str, Any] = {"image_size": run.settings.image_size} if run.settings.image_size else {}
    if run.reference != run.settings.model:
        options["model"] = run.settings.model
    return options


def _targets(run: Run) -> list[tuple[str, str, str | None, dict[str, Any] | None]]:
    """(label, path, backend, backend options) of everything measured: PyTorch first, then each artifact."""
    return [("pytorch", run.reference, "torch", _torch_options(run))] + [
        (label, str(path), None, None) for label, path in run.artifacts.items()]


def _is_shapes(model: str) -> bool:
    """Models trained on the generated shapes scenes calibrate and evaluate on generated scenes."""
    from effdet.config import get_config

    return get_config(model).name.startswith("shapes")


def _step(run: Run, index: int, name: str, fn: Any) -> None:
    """Step `index` of STEPS, with its count and the time so far (the steps differ too much for an ETA)."""
    spent = sum(run.timings.values())
    logger.info(f"== pipeline: {name} [step {index}/{len(STEPS)}" + (f", {spent:.0f} s so far]" if spent >= 1 else "]"))
    t0 = time.perf_counter()
    fn(run)
    run.timings[name] = time.perf_counter() - t0


def prepare_reference(run: Run) -> None:
    """The PyTorch model everything is compared with: a checkpoint, shipped weights, or seeded random."""
    from effdet.pretrained import has_pretrained

    s = run.settings
    if s.checkpoint is not None:
        run.reference = str(s.checkpoint)
    elif has_pretrained(s.model):
        run.reference = s.model
    else:
        import torch

        from effdet import create_model

        torch.manual_seed(0)
        path = s.output / "random_weights.pth"
        torch.save(create_model(s.model, image_size=s.image_size).state_dict(), path)
        run.reference = str(path)
        run.notes.append(f"{s.model} has no weights given: seeded random weights ({path.name}); detections are "
                         "not meaningful, parity still is")


def export_artifacts(run: Run) -> None:
    from export.onnx_export import export_onnx
    from export.settings import ExportSettings

    s = run.settings
    ckpt = Path(run.reference) if run.reference.endswith(".pth") else None
    for label, nms in (("fp32", "efficient"), ("fp32-onnxnms", "onnx")):
        path = s.output / f"{s.model}.{label}.onnx"
        run.artifacts[label] = export_onnx(ExportSettings(model=s.model, checkpoint=ckpt, output=path, nms=nms,
                                                          image_size=s.image_size, score_threshold=0.05))


def quantize_artifacts(run: Run) -> None:
    from calibration.artifacts import QuantizeSettings, quantize_onnx

    s = run.settings
    fp32 = run.artifacts["fp32"]
    run.artifacts["fp16"] = quantize_onnx(QuantizeSettings(onnx=fp32, output=s.output / f"{s.model}.fp16.onnx"))
    calib = s.calib_dir or _synthetic_calibration(run)
    if calib is None:
        run.notes.append("INT8 skipped: no --calib-dir (INT8 needs representative images)")
        return
    from calibration.qdq_forms import FP16_FORM, FP32_FORM

    trt86 = s.output / f"{s.model}{FP32_FORM.suffix}"     # one calibration, both INT8 forms (calibration/qdq_forms)
    run.artifacts["int8"] = quantize_onnx(QuantizeSettings(
        onnx=fp32, output=s.output / f"{s.model}{FP16_FORM.suffix}", precision="int8", calib_dir=calib,
        calib_images=s.calib_images, trt_version=FP16_FORM.min_tensorrt,
        extra_forms=((FP32_FORM.min_tensorrt, trt86),)))
    run.artifacts["int8-trt86"] = trt86


def _synthetic_calibration(run: Run) -> Path | None:
    """Shapes models calibrate on generated scenes (seed 2: neither training nor validation)."""
    from effdet.synthetic import write_dataset

    s = run.settings
    if not _is_shapes(s.model):
        return None
    folder = s.output / "calibration-images"
    write_dataset(folder, s.calib_images, 2, progress=False)
    run.notes.append(f"INT8 calibrated on {s.calib_images} generated scenes (seed 2)")
    return folder


def build_engines(run: Run) -> None:
    from runtime.gpu import cuda_device_count
    from runtime.trt_compat import tensorrt_available

    if not (tensorrt_available() and cuda_device_count() > 0):   # not installed, only its stubs, or no GPU
        run.notes.append("TensorRT engines not built: TensorRT or an NVIDIA GPU is not available on this machine "
                         "(build them with `effdet-deploy build --onnx FILE` where TensorRT is installed)")
        return
    from export.build_plan import BuildSettings
    from export.engine_build import engine_from_onnx
    from runtime.trt_compat import require_tensorrt, version_tuple

    int8 = "int8-trt86" if version_tuple(require_tensorrt())[0] < 10 else "int8"   # the INT8 form for this TensorRT
    for label in [k for k in ("fp32", "fp16", int8) if k in run.artifacts]:
        onnx = run.artifacts[label]
        run.artifacts[f"{label}-trt"] = engine_from_onnx(BuildSettings(onnx=onnx, engine=onnx.with_suffix(".engine")))


def compare_all(run: Run) -> None:
    from effdet_deploy.reporting import compare_targets, worst_picture
    from effdet_deploy.tool_images import tool_images
    from runtime.parity import SCORE_FLOOR

    s = run.settings
    _, images = tool_images(s.images, s.compare_images)       # the user's pictures where given (--images)
    labels = list(run.artifacts)
    where = "built-in image(s)" if s.images is None else f"image(s) of {s.images}"
    logger.info(f"  {len(labels)} artifact(s) vs PyTorch on {len(images)} {where}: raw outputs and "
                f"detections at score >= {SCORE_FLOOR}")
    comparison = compare_targets(run.reference, [str(run.artifacts[k]) for k in labels], images,
                                 _torch_options(run), builtin_images=s.images is None)
    for index, (label, result) in enumerate(zip(labels, comparison.results)):
        run.parity[label] = result.to_json()
        logger.info(f"  {label}: {result.verdict}" + (f" ({'; '.join(result.reasons())})" if not result else ""))
        for warning in result.warnings:
            if f"compare: {warning}" not in run.notes:
                logger.warning(f"  warning: {warning}")
                run.notes.append(f"compare: {warning}")
        if not result:
            png = s.output / f"worst_{label}.png"
            worst_picture(comparison, index, images[result.worst_image], ("PyTorch", label)).save(png)
            run.pictures.append(png.name)


def bench_all(run: Run) -> None:
    from effdet_deploy.benchmarking import bench_model

    for label, path, backend, options in _targets(run):
        result, description = bench_model(path, 1, 2, run.settings.bench_iterations, backend=backend, options=options)
        run.bench[label] = {"backend": description, **result.to_json()}


def evaluate_all(run: Run) -> None:
    from runtime.coco_eval import evaluate_files

    s = run.settings
    if s.annotations is not None and s.images is not None:
        images, annotations = s.images, s.annotations
    elif _is_shapes(s.model):
        from effdet.synthetic import VALIDATION_SEED, write_dataset

        annotations = write_dataset(s.output / "validation", s.eval_images, VALIDATION_SEED, progress=False)
        images = annotations.parent / "images"
        run.notes.append(f"accuracy on {s.eval_images} generated validation scenes (seed {VALIDATION_SEED})")
    else:
        run.notes.append("accuracy not measured: give --images and --annotations (COCO format)")
        return
    skipped: list[str] = []
    for label, path, backend, options in _targets(run):
        skipped.clear()
        run.accuracy[label] = evaluate_files(path, images, annotations, s.output / f"results_{label}.json",
                                             backend=backend, options=options, skipped=skipped)
    if skipped:           # the same images for every artifact: one note
        run.notes.append(f"accuracy left out {len(skipped)} unreadable image(s) and their objects: "
                         f"{', '.join(skipped[:3])}{' ...' if len(skipped) > 3 else ''}")


def draw_examples(run: Run) -> None:
    """A few pictures with detections drawn (the FP32 file), and what was found printed."""
    from effdet_deploy.tool_images import tool_images
    from runtime.detector import Detector
    from runtime.draw import draw_detections

    names, images = tool_images(None, 5)
    with Detector(run.artifacts["fp32"]) as det:          # the one default score threshold (runtime/thresholds.py)
        for name, image, found in zip(names, images, det.detect(images)):
            labels = [det.info.class_name(int(c)) for c in found.classes]
            logger.info(f"  {name}: {len(found)} found: "
                        f"{', '.join(f'{n} {s:.2f}' for n, s in zip(labels, found.scores)) or '-'}")
            target = run.settings.output / f"detections_{Path(name).stem}.png"
            draw_detections(image, found, det.info.class_names).save(target)
            run.pictures.append(target.name)


STEPS = [("reference", prepare_reference), ("export", export_artifacts), ("quantize", quantize_artifacts),
         ("engines", build_engines), ("compare", compare_all), ("bench", bench_all), ("eval", evaluate_all),
         ("pictures", draw_examples)]


def check_settings(s: PipelineSettings) -> None:
    """Every input the steps will read, checked before the first step: a typo in --calib-dir or --images
    fails at once, not after minutes of export and quantization, and before the output folder exists. The
    torch-free checks come first (answered in well under a second); a checkpoint is then loaded into the model,
    so one of another network fails here, not in the reference step with a half-made output folder."""
    from effdet.config import get_config
    from runtime.image_io import list_images

    if not s.output.parent.resolve().is_dir():
        raise DeployError(f"{s.output}: parent folder does not exist")
    get_config(s.model)
    counts = {"--calib-images": s.calib_images, "--eval-images": s.eval_images,
              "--bench-iterations": s.bench_iterations, "--image-size": 1 if s.image_size is None else s.image_size}
    for flag, value in counts.items():
        if value < 1:
            raise DeployError(f"{flag} must be at least 1, got {value}")
    if s.checkpoint is not None and not s.checkpoint.is_file():
        raise DeployError(f"{s.checkpoint}: checkpoint not found")
    if s.calib_dir is not None:
        list_images(s.calib_dir)
    if (s.images is None) != (s.annotations is None):
        raise DeployError("--images and --annotations go together (COCO-format annotations for those images)")
    if s.images is not None and s.annotations is not None:
        from runtime.coco_annotations import load_annotations, nothing_to_evaluate

        list_images(s.images)
        empty = nothing_to_evaluate(load_annotations(s.annotations))    # a bad file: its one-line error
        if empty:
            raise DeployError(f"{s.annotations}: {empty}; no accuracy to measure")
    if s.checkpoint is not None:
        _check_checkpoint(s)


def _check_checkpoint(s: PipelineSettings) -> None:
    """The checkpoint names its architecture if it records one, and loads into --model (keys and shapes)."""
    from effdet import create_model
    from effdet.checkpoint import checkpoint_facts, other_architecture, wrong_architecture
    from effdet.config import get_config

    assert s.checkpoint is not None
    recorded = other_architecture(checkpoint_facts(s.checkpoint), s.model)   # unreadable: its one-line error
    if recorded is not None:
        raise wrong_architecture(s.checkpoint, recorded, get_config(s.model).name)
    create_model(s.model, checkpoint=s.checkpoint, image_size=s.image_size)


def run_pipeline(s: PipelineSettings) -> Run:
    from effdet_deploy.console import third_party_to_log
    from effdet_deploy.interrupt_cleanup import IncompleteMark, private_tempdir
    from effdet_deploy.report import write_report

    check_settings(s)
    s.output.mkdir(parents=True, exist_ok=True)
    run = Run(s)
    log = s.output / "pipeline.log"
    mark = IncompleteMark(s.output, ("report.md", "summary.json"))   # until the report is written (Ctrl-C, crash)
    with private_tempdir(), third_party_to_log(log, verbose=logger.isEnabledFor(logging.DEBUG)):
        for index, (name, fn) in enumerate(STEPS, start=1):        # our progress stays on the console
            mark.update(f"stopped in step '{name}'")
            _step(run, index, name, fn)
        mark.update("stopped while writing report.md")
    run.notes.append(f"messages of ModelOpt, ONNX Runtime and other libraries: {log.name}")
    write_report(run)
    summary = {"settings": json.loads(json.dumps(asdict(s), default=str)), "reference": run.reference,
               "artifacts": {k: str(v) for k, v in run.artifacts.items()}, "parity": run.parity, "bench": run.bench,
               "accuracy": run.accuracy, "notes": run.notes, "step_seconds": run.timings}
    write_atomic(s.output / "summary.json", json.dumps(summary, indent=2))
    mark.done()
    return run
