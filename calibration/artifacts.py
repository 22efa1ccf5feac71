"""`quantize_onnx`: an exported FP32 file -> its FP16 or INT8 twin, with metadata saying how it was made.

One dataclass of settings; the file is written atomically (nothing overwritten on failure).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import onnx

from calibration.fp16 import to_fp16
from calibration.graph_split import SplitGraph, join, split
from calibration.images import CalibrationImages
from calibration.int8 import DEFAULT_METHOD, METHODS, quantize_body, sensitive_nodes
from calibration.opset17 import MIN_TENSORRT, to_opset17
from export.onnx_export import node_counts
from export.onnx_io import metadata_of, read_onnx, write_onnx
from runtime.errors import DeployError, require_file
from runtime.image_io import list_images
from runtime.log import logger
from runtime.model_info import ModelInfo

PRECISIONS = ("fp16", "int8")


@dataclass(frozen=True)
class QuantizeSettings:
    onnx: Path
    output: Path
    precision: str = "fp16"
    calib_dir: Path | None = None
    calib_images: int = 500
    calib_batch: int = 8
    method: str = DEFAULT_METHOD     # mixed (per-tensor best of entropy/percentile/max) | entropy | max
    exclude: str = "default"         # default (int8.sensitive_nodes) | none | auto | comma-separated node names
    target: float = 0.05             # --exclude auto: largest relative output error accepted
    holdout: int = 16                # --exclude auto: images held out of calibration to measure on
    seed: int = 0


def _load_fp32(path: Path) -> tuple[onnx.ModelProto, ModelInfo]:
    model = read_onnx(path)
    info = ModelInfo.from_metadata(metadata_of(model), str(path))
    if info.precision != "fp32":
        raise DeployError(f"{path}: is already {info.precision}; quantize the FP32 export")
    return model, info


def check(s: QuantizeSettings) -> None:
    """The settings and the inputs' presence, cheap enough to run before the command opens its log."""
    if s.precision not in PRECISIONS:
        raise DeployError(f"--precision must be one of {', '.join(PRECISIONS)}, got {s.precision}")
    if s.precision == "int8" and s.calib_dir is None:
        raise DeployError("--precision int8 needs --calib-dir (a folder of representative images)")
    if s.method not in METHODS:
        raise DeployError(f"--method must be one of {', '.join(METHODS)}, got {s.method}")
    if not s.output.resolve().parent.is_dir():
        raise DeployError(f"{s.output}: output folder does not exist")
    if s.output.resolve() == s.onnx.resolve():
        raise DeployError(f"{s.output}: --output is the input file; write the {s.precision.upper()} file beside it")
    require_file(s.onnx, "an ONNX file")
    if s.calib_dir is not None and s.precision == "int8":
        found = min(len(list_images(s.calib_dir)), s.calib_images)
        if s.exclude == "auto" and found < 2 * s.holdout:
            raise DeployError(f"--exclude auto needs at least {2 * s.holdout} calibration images, {s.calib_dir} "
                              f"gives {found}")
        if s.exclude not in ("auto", "default", "none"):
            names = {n.name for n in read_onnx(s.onnx, weights=False).graph.node}
            unknown = [n for n in s.exclude.split(",") if n and n not in names]
            if unknown:
                raise DeployError(f"{s.onnx}: --exclude names nodes that are not in the file: {', '.join(unknown[:3])}")


def quantize_onnx(s: QuantizeSettings) -> Path:
    """Write s.output; returns it."""
    check(s)
    t0 = time.perf_counter()
    model, info = _load_fp32(s.onnx)
    if s.precision == "fp16":
        logger.info(f"[1/2] converting {s.onnx.name} to strongly typed FP16 (ModelOpt AutoCast)")
        result, kept = to_fp16(model)
        logger.info(f"[2/2] {len(kept)} body nodes kept FP32 by policy; tail FP32 as exported")
    else:
        result = _int8(model, info, s)
    result = checked_for_min_tensorrt(result, s.onnx)
    write_onnx(result, s.output)
    counts = node_counts(result)
    logger.info(f"wrote {s.output} in {time.perf_counter() - t0:.0f}s: {sum(counts.values())} nodes "
                f"({', '.join(f'{k} {v}' for k, v in list(counts.items())[:6])})")
    return s.output


def checked_for_min_tensorrt(model: onnx.ModelProto, source: Path) -> onnx.ModelProto:
    """The whole quantized file at opset 17, as its metadata promises (min_tensorrt 8.6): only the body went
    through to_opset17, so a tail exported at opset 18-20 (e.g. --nms onnx's ReduceMax with an axes input)
    was written as an invalid opset-17 file. Rewritten here (exact rewrites only), then the ONNX checker and
    export/lint.py for MIN_TENSORRT must pass before anything is written."""
    from export.lint import lint

    try:
        model = to_opset17(model)
    except (DeployError, onnx.checker.ValidationError) as e:
        raise DeployError(f"{source}: the quantized file cannot be written at opset 17 for TensorRT {MIN_TENSORRT}: "
                          f"{str(e).splitlines()[0]}; export it with --opset 17") from None
    problems = lint(model, MIN_TENSORRT)
    if problems:
        raise DeployError(f"{source}: the quantized file would not parse on TensorRT {MIN_TENSORRT}: {problems[0]}"
                          + (f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""))
    return model


def _named_exclusions(exclude: str, parts: SplitGraph) -> list[str]:
    """--exclude none | default (the measured SENSITIVE_GROUPS and SENSITIVE_PATTERNS) | node,names -> node names."""
    if exclude == "none":
        return []
    if exclude == "default":
        return sensitive_nodes(parts)
    return [n for n in exclude.split(",") if n]


def _int8(model: onnx.ModelProto, info: ModelInfo, s: QuantizeSettings) -> onnx.ModelProto:
    assert s.calib_dir is not None
    t0 = time.perf_counter()
    images = CalibrationImages(s.calib_dir, info, s.calib_images, s.calib_batch, s.seed)
    data = images.array()
    logger.info(f"[1/2] {len(data)} calibration images from {s.calib_dir}"
                f"{f' ({len(images.skipped)} unreadable skipped)' if images.skipped else ''}")
    parts = split(model)
    meta = {"precision": "int8", "calibration_method": s.method, "calibration_images": str(len(data)),
            "calibration_skipped": str(len(images.skipped)), "exclude": s.exclude, "min_tensorrt": MIN_TENSORRT}
    if s.exclude == "auto":
        from calibration.sensitivity import find_exclusions

        if len(data) < 2 * s.holdout:
            raise DeployError(f"--exclude auto needs at least {2 * s.holdout} calibration images, got {len(data)}")
        logger.info(f"[2/2] sensitivity search on {s.holdout} held-out images (ModelOpt {s.method})")
        report, body = find_exclusions(parts, data[:-s.holdout], data[-s.holdout:], s.method, s.target)
        for line in report.lines():
            logger.info(line)
        meta.update(excluded_groups=",".join(report.excluded_groups), excluded_nodes=json.dumps(report.excluded_nodes),
                    sensitivity=json.dumps({"target": report.target, "all_quantized_error": report.full_error,
                                            "final_error": report.final_error, "groups": report.group_errors}))
    else:
        exclude = _named_exclusions(s.exclude, parts)
        known = {n.name for n in parts.body.graph.node}
        unknown = [n for n in exclude if n not in known]
        if unknown:
            raise DeployError(f"{s.onnx}: --exclude names nodes that are not in the network: {', '.join(unknown[:3])}")
        logger.info(f"[2/2] quantizing with ModelOpt ({s.method}), {len(exclude)} node(s) excluded")
        body = quantize_body(parts, data, s.method, exclude)
        meta.update(excluded_nodes=json.dumps(exclude))
    logger.info(f"calibration and quantization took {time.perf_counter() - t0:.0f}s; writing opset 17")
    return join(parts, body, meta)   # quantize_body (also under find_exclusions) already wrote opset 17
