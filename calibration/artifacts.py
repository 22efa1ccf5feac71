"""`quantize_onnx`: an exported FP32 file -> its FP16 or INT8 twin, with metadata saying how it was made.

One dataclass of settings; files are written atomically (nothing overwritten on failure). INT8 comes in the
form NVIDIA's tools emit for the target TensorRT (calibration/qdq_forms.py): `trt_version` picks the form of
`output`, `extra_forms` writes further forms of the same calibration (pipeline and demo write both).
"""
from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass
from pathlib import Path

import onnx

from calibration.fp16 import to_fp16
from calibration.graph_split import SplitGraph, join, split
from calibration.images import CalibrationImages
from calibration.int8 import DEFAULT_METHOD, METHODS, quantize_body, sensitive_nodes
from calibration.opset17 import MIN_TENSORRT
from calibration.qdq_forms import DEFAULT_TRT, FP16_FORM, QdqForm, form_for, in_form, opset_of, to_opset
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
    exclude: str = "default"         # default (int8.sensitive_nodes) | none | auto | node,names | @exclude-file
    target: float = 0.05             # --exclude auto: largest relative output error accepted
    holdout: int = 16                # --exclude auto: images held out of calibration to measure on
    seed: int = 0
    trt_version: str = DEFAULT_TRT   # int8: the TensorRT `output` is for (8.x: FP32 opset-17 form; 10.0+: ModelOpt's)
    extra_forms: tuple[tuple[str, Path], ...] = ()   # int8: (TensorRT version, path) of more forms, same calibration

    def int8_outputs(self) -> dict[Path, QdqForm]:
        """Every INT8 file to write and its form."""
        return {path: form_for(trt) for trt, path in ((self.trt_version, self.output), *self.extra_forms)}


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
    outputs = list(s.int8_outputs()) if s.precision == "int8" else [s.output]
    for output in outputs:
        if not output.resolve().parent.is_dir():
            raise DeployError(f"{output}: output folder does not exist")
        if output.resolve() == s.onnx.resolve():
            raise DeployError(f"{output}: --output is the input file; write the {s.precision.upper()} file beside it")
    if len({o.resolve() for o in outputs}) < len(outputs):
        raise DeployError(f"{s.output}: two INT8 forms would be written to the same file")
    require_file(s.onnx, "an ONNX file")
    if s.calib_dir is not None and s.precision == "int8":
        found = min(len(list_images(s.calib_dir)), s.calib_images)
        if s.exclude == "auto" and found < 2 * s.holdout:
            raise DeployError(f"--exclude auto needs at least {2 * s.holdout} calibration images, {s.calib_dir} "
                              f"gives {found}")
        if s.exclude not in ("auto", "default", "none"):
            names = {n.name for n in read_onnx(s.onnx, weights=False).graph.node}
            unknown = [n for n in _listed(s.exclude) if n not in names]
            if unknown:
                raise DeployError(f"{s.onnx}: --exclude names nodes that are not in the file: {', '.join(unknown[:3])}")


def quantize_onnx(s: QuantizeSettings) -> Path:
    """Write s.output (and, for INT8, the files of s.extra_forms); returns s.output."""
    check(s)
    t0 = time.perf_counter()
    model, info = _load_fp32(s.onnx)
    if s.precision == "fp16":
        logger.info(f"[1/2] converting {s.onnx.name} to strongly typed FP16 (ModelOpt AutoCast)")
        result, kept = to_fp16(model, info)
        logger.info(f"[2/2] {len(kept)} body nodes kept FP32 by policy; tail FP32 as exported")
        files = {s.output: checked_for(result, 17, MIN_TENSORRT, s.onnx)}
    else:
        files = _int8(model, info, s)
    for path, result in files.items():      # every file checked before the first is written
        write_onnx(result, path)
        counts = node_counts(result)
        logger.info(f"wrote {path} in {time.perf_counter() - t0:.0f}s: {sum(counts.values())} nodes "
                    f"({', '.join(f'{k} {v}' for k, v in list(counts.items())[:6])})")
    return s.output


def checked_for(model: onnx.ModelProto, opset: int, min_tensorrt: str, source: Path) -> onnx.ModelProto:
    """The whole file at `opset`, as its metadata promises (min_tensorrt): converted (opset 17: exact rewrites
    only, calibration/opset17.py), then the ONNX checker and export/lint.py for `min_tensorrt` must pass before
    anything is written. (Only converting the body once wrote an --nms onnx tail exported at opset 18-20 into an
    invalid "opset 17" file.)"""
    from export.lint import lint

    try:
        model = to_opset(model, opset)
        onnx.checker.check_model(model)
    except (DeployError, onnx.checker.ValidationError) as e:
        raise DeployError(f"{source}: the quantized file cannot be written at opset {opset} for TensorRT "
                          f"{min_tensorrt}: {str(e).splitlines()[0]}; export it with --opset 17") from None
    problems = lint(model, min_tensorrt)
    if problems:
        raise DeployError(f"{source}: the quantized file would not parse on TensorRT {min_tensorrt}: {problems[0]}"
                          + (f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""))
    return model


def _named_exclusions(exclude: str, parts: SplitGraph) -> list[str]:
    """--exclude none | default (the measured SENSITIVE_GROUPS and SENSITIVE_PATTERNS) | node,names | @FILE (an
    exclude file from compare --suggest-exclude: calibration/exclude_file.py) -> node names."""
    if exclude == "none":
        return []
    if exclude == "default":
        return sensitive_nodes(parts)
    return _listed(exclude)


def _listed(exclude: str) -> list[str]:
    """Node names of 'a,b,c' or of the exclude file '@FILE'."""
    if exclude.startswith("@"):
        from calibration.exclude_file import read_exclude_file

        return read_exclude_file(Path(exclude[1:]))
    return [n for n in exclude.split(",") if n]


def _int8(model: onnx.ModelProto, info: ModelInfo, s: QuantizeSettings) -> dict[Path, onnx.ModelProto]:
    """One calibration, every form asked for: {path: checked file}."""
    assert s.calib_dir is not None
    t0 = time.perf_counter()
    images = CalibrationImages(s.calib_dir, info, s.calib_images, s.calib_batch, s.seed)
    data = images.array()
    logger.info(f"[1/2] {len(data)} calibration images from {s.calib_dir}"
                f"{f' ({len(images.skipped)} unreadable skipped)' if images.skipped else ''}")
    opset = FP16_FORM.opset_for(opset_of(model))     # ModelOpt's body is opset 19+; the tail joins it at the same
    try:
        parts = split(to_opset(model, opset))
    except DeployError as e:
        raise DeployError(f"{s.onnx}: {e}; export it with --opset 17") from None
    meta = {"precision": "int8", "calibration_method": s.method, "calibration_images": str(len(data)),
            "calibration_skipped": str(len(images.skipped)), "exclude": s.exclude}
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
    logger.info(f"calibration and quantization took {time.perf_counter() - t0:.0f}s")
    files = {}
    for path, form in s.int8_outputs().items():
        joined = join(parts, copy.deepcopy(in_form(body, form)),
                      {**meta, "qdq_form": form.name, "min_tensorrt": form.min_tensorrt})
        files[path] = checked_for(joined, form.opset_for(opset), form.min_tensorrt, s.onnx)
        logger.info(f"INT8 for TensorRT >= {form.min_tensorrt}: {form.name} ({qdq_summary(files[path])})")
    return files


def qdq_summary(model: onnx.ModelProto) -> str:
    """'142 of 214 convs read a DQ directly, 0 Casts next to a Q/DQ': what TensorRT's INT8 fusion needs, counted."""
    from export.qdq_graph import qdq_adjacent_casts, quantized_convs

    convs = sum(1 for n in model.graph.node if n.op_type == "Conv")
    return (f"{len(quantized_convs(model))} of {convs} convs read a DQ directly, "
            f"{len(qdq_adjacent_casts(model))} Casts next to a Q/DQ")
