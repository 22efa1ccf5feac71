"""`export`: weights -> ONNX. Only parses flags; export.onnx_export does the work."""
from __future__ import annotations

import argparse
from pathlib import Path

from runtime.errors import DeployError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="model name or alias (d0..d7x, lite0..lite4)")
    p.add_argument("--checkpoint", type=Path, help="effdet state_dict (default: random weights)")
    p.add_argument("--output", type=Path, required=True, help="the ONNX file to write (not a folder)")
    p.add_argument("--image-size", help="N or H,W (default: the model's)")
    p.add_argument("--num-classes", type=int, help="(default: the model's or the checkpoint's)")
    p.add_argument("--class-names", help="comma-separated names stored in the metadata, one per class")
    p.add_argument("--nms", choices=["efficient", "onnx", "none"], default="efficient",
                   help="EfficientNMS_TRT plugin, standard ONNX ops, or raw boxes/scores")
    p.add_argument("--score-threshold", type=float, default=0.001,
                   help="the file's NMS threshold: the floor under every runtime score filter (low for COCO mAP)")
    p.add_argument("--iou-threshold", type=float, default=0.5, help="the file's NMS IoU, in [0, 1]")
    p.add_argument("--max-detections", type=int, default=100, help="detections per image the file keeps")
    p.add_argument("--no-preprocess", action="store_true", help="input is already normalized float32 NCHW")
    p.add_argument("--input-format", choices=["nchw", "nhwc"], default="nchw")
    p.add_argument("--input-dtype", choices=["float32", "uint8"], default="float32")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--batch", type=int, default=1)
    g.add_argument("--dynamic-batch", help="MIN,OPT,MAX")
    p.add_argument("--opset", type=int, default=17, help="13..20; TensorRT 8.6 parses up to 17")
    p.add_argument("--pre-nms-top-k", type=int, default=None,
                   help="candidates kept before NMS, over anchors x classes (--nms onnx: default 2000, at most 3839, "
                        "within TensorRT's TopK and NMS limits; --nms none: default 4096; the plugin's is fixed at 4096)")


def _triple(text: str | None) -> tuple[int, int, int] | None:
    if text is None:
        return None
    try:
        a, b, c = (int(v) for v in text.split(","))
    except ValueError:
        raise DeployError(f"--dynamic-batch must be MIN,OPT,MAX integers, got '{text}'") from None
    return a, b, c


def run(args: argparse.Namespace) -> int:
    from effdet.config import parse_image_size
    from export.settings import ExportSettings
    from export.settings_check import check_settings

    settings = ExportSettings(
        model=args.model, output=args.output, checkpoint=args.checkpoint,
        image_size=parse_image_size(args.image_size) if args.image_size else None, num_classes=args.num_classes,
        class_names=tuple(args.class_names.split(",")) if args.class_names else (), nms=args.nms,
        score_threshold=args.score_threshold, iou_threshold=args.iou_threshold, max_detections=args.max_detections,
        preprocess=not args.no_preprocess, input_format=args.input_format, input_dtype=args.input_dtype,
        batch=args.batch, dynamic_batch=_triple(args.dynamic_batch), opset=args.opset,
        pre_nms_top_k=args.pre_nms_top_k)
    check_settings(settings)        # before torch is imported: a mistyped flag is answered at once
    from export.onnx_export import export_onnx

    export_onnx(settings)
    return 0
