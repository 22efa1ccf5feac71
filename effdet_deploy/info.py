"""What a model name or file is, like `polygraphy inspect model`: sections of (key, value) lines.

- model names: architecture, parameters and multiply-adds at the native size (effdet/flops.py; the
  paper's Table 1 figure beside it where there is one);
- ONNX files: input contract, outputs, classes, NMS kind and thresholds, precision, batch profile, opset
  and, per TensorRT parser branch of export/lint.py's table, whether the file parses there;
- engines: the sidecar (TensorRT version, GPU, flags, profile) and the contract of the ONNX it came from;
- checkpoints: what a training checkpoint records (architecture, image size, class names).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from runtime.errors import DeployError
from runtime.model_info import ModelInfo

Section = tuple[str, list[tuple[str, str]]]


def describe(target: str, image_size: Any = None) -> list[Section]:
    """Sections describing a model name, .onnx, engine (.engine/.plan/.trt) or checkpoint (.pth/.pt/.ckpt)."""
    from runtime.detector import SUFFIXES   # the file kinds the runtime opens, by suffix

    path = Path(target)
    kind = SUFFIXES.get(path.suffix.lower())
    if image_size is not None and (kind is not None or path.exists()):
        raise DeployError(f"{target}: --image-size applies to model names; a file records its own image size")
    if kind == "onnxruntime":
        return describe_onnx(path)
    if kind == "tensorrt":
        return describe_engine(path)
    if kind == "torch":
        return describe_checkpoint(path)
    if path.exists():
        raise DeployError(f"{target}: not a model file this tool knows (.onnx, .engine/.plan/.trt, .pth/.pt/.ckpt)")
    return describe_model_name(target, image_size)


def describe_model_name(name: str, image_size: Any = None) -> list[Section]:
    from effdet.config import get_config

    config = get_config(name, **({"image_size": image_size} if image_size is not None else {}))
    return [("model", _architecture(config)), ("cost", _cost_lines(config.name, image_size))]


def _architecture(config: Any) -> list[tuple[str, str]]:
    return [("name", config.name), ("backbone", config.backbone),
            ("BiFPN", f"{config.fpn_cell_repeats} cells x {config.fpn_channels} channels, {config.fusion} fusion, "
                      f"levels P{config.min_level}-P{config.max_level}"),
            ("heads", f"{config.box_class_repeats} repeats, {config.anchors_per_location} anchors per location "
                      f"(anchor scale {config.anchor_scale})"),
            ("image size", _hw(config.image_size)), ("classes", _classes(config.num_classes, config.class_names)),
            ("preprocessing", f"RGB 0-255, mean {_nums(config.mean)}, std {_nums(config.std)}"),
            ("activation", config.act), ("padding", "TF SAME" if config.tf_padding else "PyTorch k//2")]


def _cost_lines(name: str, image_size: Any) -> list[tuple[str, str]]:
    from effdet.config import get_config
    from effdet.flops import PAPER_FLOPS, model_cost

    full = get_config(name).name
    native = model_cost(full)
    lines = [("parameters", f"{native.parameters:,} ({native.parameters / 1e6:.2f} M)"),
             (f"multiply-adds at {_hw(native.image_size)}", f"{native.macs / 1e9:.2f} B"
              + (f" (paper Table 1: {PAPER_FLOPS[full] / 1e9:g} B)" if full in PAPER_FLOPS else ""))]
    if image_size is not None:
        sized = model_cost(full, image_size)
        lines.append((f"multiply-adds at {_hw(sized.image_size)}", f"{sized.macs / 1e9:.2f} B"))
    return lines


def describe_onnx(path: Path) -> list[Section]:
    from runtime.lazy import lazy_import

    lazy_import("onnx", "onnx")
    from export.onnx_io import metadata_of, read_onnx

    proto = read_onnx(path, weights=False)
    meta = metadata_of(proto)
    info = ModelInfo.from_metadata(meta, str(path))
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    io = [(f"input {t.name}", _tensor(t)) for t in proto.graph.input] + \
         [(f"output {t.name}", _tensor(t)) for t in proto.graph.output]
    graph = [("nodes", str(len(proto.graph.node))), ("opset", str(opset)),
             ("producer", f"{meta.get('toolkit', '?')} {meta.get('toolkit_version', '')}".strip())]
    return [("file", [("path", str(path)), ("size", f"{path.stat().st_size / 1e6:.1f} MB")] + graph),
            ("contract", _contract(info) + io), ("TensorRT", _tensorrt_lines(proto, meta))]


def _precision(info: ModelInfo) -> str:
    """'int8, TensorRT >= 10.0 form (fp16-opset19), mixed calibration on 64 images, 182 nodes kept out of INT8'."""
    extra = info.extra
    if info.precision != "int8":
        return info.precision
    from runtime.qdq_twin import FP16_QDQ_FORM, FP32_QDQ_FORM

    form = {FP16_QDQ_FORM: "TensorRT >= 10.0 form", FP32_QDQ_FORM: "TensorRT 8.6 form"}.get(extra.get("qdq_form", ""))
    parts = [f"{form} ({extra['qdq_form']})" if form else "", f"{extra['calibration_method']} calibration on "
             f"{extra.get('calibration_images', '?')} images" if "calibration_method" in extra else ""]
    try:
        parts.append(f"{len(json.loads(extra['excluded_nodes']))} nodes kept out of INT8 "
                     f"(--exclude {extra.get('exclude', '?')})" if "excluded_nodes" in extra else "")
    except (ValueError, TypeError):
        parts.append("excluded nodes unreadable")
    return ", ".join(["int8", *(p for p in parts if p)])


def _contract(info: ModelInfo) -> list[tuple[str, str]]:
    """The lines every file kind shares: what goes in, what comes out, how it was post-processed."""
    extra = info.extra
    nms = {"efficient": "EfficientNMS_TRT plugin", "onnx": "ONNX NonMaxSuppression", "none": "none (raw outputs)"}
    lines = [("model", info.model), ("image size", _hw(info.image_size)),
             ("input", f"{info.input_layout.upper()} {info.input_dtype}, "
                       + (f"RGB 0-255, normalized in the graph (mean {_nums(info.mean)}, std {_nums(info.std)})"
                          if info.preprocess else "already normalized")),
             ("classes", _classes(info.num_classes, info.class_names)), ("precision", _precision(info)),
             *([("weights", "RANDOM (exported without a checkpoint): detections are meaningless")]
               if extra.get("weights") == "random" else []),
             ("batch", f"{info.batch[0]}" if info.batch[0] == info.batch[1] else f"{info.batch[0]}..{info.batch[1]}"
              + (f" (dynamic {extra['batch'][len('dynamic:'):]} min,opt,max)" if "dynamic:" in extra.get("batch", "") else "")),
             ("NMS", nms.get(info.nms, info.nms))]
    where = " (applied by the runtime's numpy NMS)" if info.nms == "none" else ""
    lines.append(("NMS thresholds", f"score >= {info.score_threshold:g}, IoU {info.iou_threshold:g}, "
                                    f"max {info.max_detections} detections"
                                    + f", pre-NMS top-k {info.pre_nms_top_k}"
                                    + ("" if "pre_nms_top_k" in extra else " (not recorded: the plugin's)") + where))
    return lines


def _tensorrt_lines(proto: Any, meta: dict[str, str]) -> list[tuple[str, str]]:
    """min_tensorrt from the metadata, then export/lint.py's verdict for each parser branch of its table."""
    from export.lint import PARSER_RULES, lint

    lines = [("min_tensorrt (metadata)", meta.get("min_tensorrt", "not recorded"))]
    for rules in PARSER_RULES:
        version = ".".join(map(str, rules.since))
        problems = lint(proto, version)
        lines.append((f"TensorRT {version}+ parser", "parses (opset <= %d)" % rules.max_opset if not problems
                      else f"does not parse: {problems[0]}" + (f" (+{len(problems) - 1} more)" if len(problems) > 1 else "")))
    return lines


def describe_engine(path: Path) -> list[Section]:
    from runtime.engine_sidecar import check_unchanged, read_sidecar
    from runtime.errors import require_file

    require_file(path)
    sidecar = read_sidecar(path)
    check_unchanged(path, sidecar, digest=True)
    keys = ("tensorrt_version", "gpu_name", "compute_capability", "precision", "strongly_typed", "builder_flags",
            "fp32_layers_pinned", "shapes", "version_compatible", "dla_core", "onnx",
            "engine_bytes")
    built = [(k.replace("_", " "), v if isinstance(v, str) else json.dumps(v)) for k, v in
             ((k, sidecar[k]) for k in keys if k in sidecar)]
    return [("engine", [("path", str(path))] + built),
            ("contract", _contract(ModelInfo.from_metadata(sidecar["onnx_metadata"], str(path))))]


def describe_checkpoint(path: Path) -> list[Section]:
    from effdet.checkpoint import read_checkpoint

    state, facts = read_checkpoint(path)
    lines = [("path", str(path)), ("tensors", str(len(state))),
             ("parameters", f"{sum(int(v.numel()) for v in state.values()):,} (incl. BN statistics)"),
             ("architecture", facts.model or "not recorded (pass --arch / model=)"),
             ("image size", _hw(facts.image_size) if facts.image_size else "not recorded"),
             ("class names", ", ".join(facts.class_names) if facts.class_names else "not recorded")]
    return [("checkpoint", lines)]


def format_sections(sections: list[Section]) -> str:
    width = max((len(k) for _, lines in sections for k, _ in lines), default=0)
    out = []
    for title, lines in sections:
        out.append(f"{title}:")
        out += [f"  {k:{width}s}  {v}" for k, v in lines]
    return "\n".join(out)


def _tensor(t: Any) -> str:
    from onnx import TensorProto

    dims = [d.dim_param or str(d.dim_value) if (d.dim_param or d.HasField("dim_value")) else "?"
            for d in t.type.tensor_type.shape.dim]
    return f"{TensorProto.DataType.Name(t.type.tensor_type.elem_type).lower()} [{','.join(dims)}]"


def _classes(n: int, names: tuple[str, ...]) -> str:
    return f"{n}" + (f": {', '.join(names)}" if names else " (no names recorded)")


def _hw(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]} (HxW)"


def _nums(values: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:g}" for v in values) + ")"
