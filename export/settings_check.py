"""Export settings checked before any work (one clear line each), importing neither torch nor onnx, so a mistyped
flag is answered in well under a second."""
from __future__ import annotations

import os
from pathlib import Path

from effdet.config import get_config, parse_image_size
from export.settings import NMS_KINDS, ONNX_PRE_NMS_TOP_K_MAX, ExportSettings
from runtime.errors import DeployError
from runtime.nms import PLUGIN_TOP_K
from runtime.thresholds import check_filters

MIN_OPSET, MAX_OPSET = 13, 20   # see check_settings
MAX_IMAGE_SIDE = 4096            # beyond it the export's trace allocates tens of GB before failing


def check_settings(s: ExportSettings) -> None:
    """Reject bad settings before any work, one clear line each."""
    get_config(s.model)     # an unknown name: DeployError listing the known ones
    if s.checkpoint is not None and not Path(s.checkpoint).is_file():     # its contents are read after torch loads
        raise DeployError(f"{s.checkpoint}: --checkpoint "
                          + ("is a folder, not a checkpoint file" if Path(s.checkpoint).is_dir() else "not found"))
    if s.nms not in NMS_KINDS:
        raise DeployError(f"--nms must be one of {', '.join(NMS_KINDS)}, got '{s.nms}'")
    if s.input_format not in ("nchw", "nhwc") or s.input_dtype not in ("float32", "uint8"):
        raise DeployError(f"bad input layout/dtype: {s.input_format}/{s.input_dtype}")
    if s.dynamic_batch is not None and not (1 <= s.dynamic_batch[0] <= s.dynamic_batch[1] <= s.dynamic_batch[2]):
        raise DeployError(f"--dynamic-batch must be MIN<=OPT<=MAX, >= 1; got {s.dynamic_batch}")
    if s.batch < 1 or s.max_detections < 1:
        raise DeployError("--batch and --max-detections must be >= 1")
    check_filters(s.score_threshold, s.iou_threshold, s.max_detections)   # thresholds in [0, 1]
    if not MIN_OPSET <= s.opset <= MAX_OPSET:
        raise DeployError(f"--opset must be {MIN_OPSET}..{MAX_OPSET}, got {s.opset} ({MIN_OPSET}: the --nms onnx tail "
                          f"passes axes as inputs (Unsqueeze-13); {MAX_OPSET}: the newest PyTorch's TorchScript "
                          "exporter writes; TensorRT 8.6 parses up to 17)")
    if Path(s.output).is_dir():
        raise DeployError(f"{s.output}: is a folder; --output names the file to write, e.g. {Path(s.output) / 'model.onnx'}")
    _check_pre_nms_top_k(s)
    if s.nms == "efficient" and s.max_detections > PLUGIN_TOP_K:
        raise DeployError(f"--max-detections must be <= {PLUGIN_TOP_K} for --nms efficient (the plugin keeps its "
                          f"top {PLUGIN_TOP_K} candidates), got {s.max_detections}")
    if s.num_classes is not None and s.num_classes < 1:
        raise DeployError(f"--num-classes must be at least 1, got {s.num_classes}")
    if any(not name.strip() for name in s.class_names):
        raise DeployError(f"--class-names has an empty name: {','.join(s.class_names)!r}")
    size = parse_image_size(s.image_size) if s.image_size is not None else None   # int, "H,W" or (H, W)
    if size is not None and max(size) > MAX_IMAGE_SIDE:
        raise DeployError(f"--image-size {size[0]}x{size[1]}: at most {MAX_IMAGE_SIDE} per side "
                          "(EfficientDet's largest, D7x, is 1536)")
    if s.input_dtype == "uint8" and not s.preprocess:
        raise DeployError("--input-dtype uint8 needs the preprocessing in the graph (drop --no-preprocess)")
    parent = Path(s.output).resolve().parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise DeployError(f"{s.output}: output folder does not exist or is not writable")


def _check_pre_nms_top_k(s: ExportSettings) -> None:
    k = s.resolved_pre_nms_top_k()
    if s.nms == "efficient" and k != PLUGIN_TOP_K:
        raise DeployError(f"--pre-nms-top-k: the EfficientNMS_TRT plugin's is fixed at {PLUGIN_TOP_K}, got {k}")
    if s.nms == "onnx" and not s.max_detections <= k <= ONNX_PRE_NMS_TOP_K_MAX:
        raise DeployError(f"--pre-nms-top-k must be in [--max-detections ({s.max_detections}), "
                          f"{ONNX_PRE_NMS_TOP_K_MAX}] for --nms onnx (TensorRT's TopK K < 3840), got {k}")
    if k < 1:
        raise DeployError(f"--pre-nms-top-k must be >= 1, got {k}")
