"""Export settings: one dataclass instead of loose flags (the CLI fills it, the pipeline reuses it)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

NMS_KINDS = ("efficient", "onnx", "none")
# Pre-NMS top-k over anchors x classes. --nms onnx: default 2000 keeps every TopK K < 3840 and hands
# TensorRT's INMSLayer at most 2000 boxes per image, its limit on SM 5.3/6.2 (Jetson Nano/TX2; 5000
# elsewhere), so the limit never bites and ORT computes what TensorRT computes. The plugin's is fixed
# (4096); --nms none files use the numpy reference with the plugin's semantics and this k.
ONNX_PRE_NMS_TOP_K = 2000
ONNX_PRE_NMS_TOP_K_MAX = 3839


@dataclass(frozen=True)
class ExportSettings:
    model: str = "tf_efficientdet_d0"
    output: Path = Path("model.onnx")
    checkpoint: Path | None = None
    image_size: tuple[int, int] | None = None           # default: the model's
    num_classes: int | None = None
    class_names: tuple[str, ...] = ()
    nms: str = "efficient"
    score_threshold: float = 0.001
    iou_threshold: float = 0.5
    max_detections: int = 100
    preprocess: bool = True
    input_format: str = "nchw"                          # or "nhwc"
    input_dtype: str = "float32"                        # or "uint8"
    batch: int = 1
    dynamic_batch: tuple[int, int, int] | None = None   # (min, opt, max)
    opset: int = 17
    pre_nms_top_k: int | None = None                    # default: 2000 (onnx), 4096 (efficient, none)

    def resolved_pre_nms_top_k(self) -> int:
        """The pre-NMS top-k this export uses (the plugin's fixed 4096 for efficient)."""
        from runtime.nms import PLUGIN_TOP_K

        if self.pre_nms_top_k is not None:
            return self.pre_nms_top_k
        return ONNX_PRE_NMS_TOP_K if self.nms == "onnx" else PLUGIN_TOP_K
