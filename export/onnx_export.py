"""`onnx_from_model(settings)`: weights -> fused model -> ONNX (preprocessing, decoding, NMS in the
graph) -> simplified, checked, shape-inferred, linted, with metadata -> written atomically."""
from __future__ import annotations

import collections
import io
import json
import time
import warnings
from pathlib import Path

import onnx
import torch

from effdet import create_model
from effdet.predict import model_anchors
from export.graph import ExportGraph, anchors_center_size
from export.lint import lint, oldest_tensorrt_for_opset
from export.onnx_io import write_onnx
from export.postprocess import append_efficient_nms, append_onnx_nms
from export.rewrite import fold_pads_into_pools
from export.settings import ExportSettings
from export.settings_check import check_settings
from runtime.errors import DeployError
from runtime.log import logger
from runtime.model_info import DYNAMIC_BATCH

TOOLKIT_VERSION = "0.1.0"
def weights_of(s: ExportSettings) -> str:
    """Metadata `weights`: 'checkpoint' (--checkpoint), 'shipped' (the package's own), or 'random': an export
    without either is seeded random and its detections mean nothing (the runtime says so on every load)."""
    from effdet.pretrained import has_pretrained

    return "checkpoint" if s.checkpoint is not None else "shipped" if has_pretrained(s.model) else "random"


def metadata(s: ExportSettings, model_cfg, num_anchors: int) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """metadata_props (DESIGN §3): everything the runtime needs to use the file."""
    return {
        "weights": weights_of(s),
        "model": model_cfg.name, "image_size": f"{model_cfg.image_size[0]},{model_cfg.image_size[1]}",
        "input_layout": s.input_format, "input_dtype": s.input_dtype, "preprocess": str(int(s.preprocess)),
        "mean": json.dumps(list(model_cfg.mean)), "std": json.dumps(list(model_cfg.std)),
        "num_classes": str(model_cfg.num_classes), "class_names": json.dumps(list(s.class_names or model_cfg.class_names)),
        "num_anchors": str(num_anchors), "nms": s.nms, "score_threshold": str(s.score_threshold),
        "iou_threshold": str(s.iou_threshold), "max_detections": str(s.max_detections),
        "batch": DYNAMIC_BATCH + ",".join(map(str, s.dynamic_batch)) if s.dynamic_batch else str(s.batch),
        "precision": "fp32", "toolkit": "efficientdet-deploy", "toolkit_version": TOOLKIT_VERSION,
        "pre_nms_top_k": str(s.resolved_pre_nms_top_k()),
        **({"min_tensorrt": trt} if (trt := oldest_tensorrt_for_opset(s.opset)) else {}),   # every op we emit parses there
    }


def _torch_to_onnx(graph: ExportGraph, s: ExportSettings, size: tuple[int, int]) -> onnx.ModelProto:
    batch = s.dynamic_batch[1] if s.dynamic_batch else s.batch
    shape = (batch, 3, *size) if s.input_format == "nchw" else (batch, *size, 3)
    dummy = torch.zeros(shape, dtype=torch.uint8 if s.input_dtype == "uint8" else torch.float32)
    outputs = ["boxes", "scores"] if s.nms == "none" else ["box_regression", "cls_logits"]
    dynamic = {n: {0: "batch"} for n in ["images", *outputs]} if s.dynamic_batch else None
    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about frozen Python ints: intended here
        torch.onnx.export(graph, (dummy,), buf, dynamo=False, opset_version=s.opset, input_names=["images"],
                          output_names=outputs, dynamic_axes=dynamic, do_constant_folding=True)
    return onnx.load_from_string(buf.getvalue())


def _simplify(model: onnx.ModelProto) -> onnx.ModelProto:
    import onnxslim

    return onnxslim.slim(model)


def onnx_from_model(s: ExportSettings) -> onnx.ModelProto:
    """Build the ONNX ModelProto (not written). See module docstring."""
    check_settings(s)
    t0 = time.perf_counter()
    model = create_model(s.model, checkpoint=s.checkpoint, num_classes=s.num_classes, image_size=s.image_size)
    size = model.config.image_size
    if s.class_names and len(s.class_names) != model.config.num_classes:
        raise DeployError(f"--class-names gives {len(s.class_names)} names, the model has {model.config.num_classes} "
                          "classes (one name per class, in class order)")
    logger.info("[1/5] built %s %dx%d, %d classes; fusing", model.config.name, size[0], size[1], model.config.num_classes)
    if weights_of(s) == "random":
        logger.warning("%s: no --checkpoint and no shipped weights: exporting RANDOM weights (metadata weights=random);"
                       " its detections are meaningless, parity checks still hold", s.model)
    model.fuse(size)
    anchors = model_anchors(model, size)
    graph = ExportGraph(model, anchors, s).eval()
    logger.info("[2/5] tracing to ONNX (opset %d)", s.opset)
    proto = _torch_to_onnx(graph, s, size)
    logger.info("[3/5] simplifying (%d nodes)", len(proto.graph.node))
    proto = _simplify(proto)
    folded = fold_pads_into_pools(proto)
    logger.debug("folded %d Pad(-inf) nodes into MaxPool pads", folded)
    batch: int | str = "batch" if s.dynamic_batch else s.batch
    if s.nms == "efficient":
        append_efficient_nms(proto, anchors_center_size(anchors), batch, s.score_threshold, s.iou_threshold,
                             s.max_detections)
    elif s.nms == "onnx":
        append_onnx_nms(proto, anchors_center_size(anchors), model.config.num_classes, batch, s.score_threshold,
                        s.iou_threshold, s.max_detections, s.resolved_pre_nms_top_k())
    logger.info("[4/5] post-processing '%s' appended; checking", s.nms)
    for key, value in metadata(s, model.config, len(anchors)).items():
        proto.metadata_props.add(key=key, value=value)
    proto = onnx.shape_inference.infer_shapes(proto)
    onnx.checker.check_model(proto)
    problems = lint(proto)
    if problems:
        raise DeployError(f"TensorRT lint failed: {problems[0]}" + (f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""))
    logger.info("[5/5] done in %.1fs", time.perf_counter() - t0)
    return proto


def node_counts(proto: onnx.ModelProto) -> dict[str, int]:
    return dict(collections.Counter(n.op_type for n in proto.graph.node).most_common())


def export_onnx(s: ExportSettings) -> Path:
    """onnx_from_model + atomic write + node counts printed. Returns the written path."""
    proto = onnx_from_model(s)
    write_onnx(proto, Path(s.output))
    counts = node_counts(proto)
    logger.info("wrote %s: %d nodes: %s", s.output, sum(counts.values()), ", ".join(f"{k} {v}" for k, v in counts.items()))
    return Path(s.output)
