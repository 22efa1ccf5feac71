"""Export settings: one dataclass instead of loose flags (the CLI fills it, the pipeline reuses it)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

NMS_KINDS = ("efficient", "onnx", "none")


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
