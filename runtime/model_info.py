"""What a model file says about itself (DESIGN §3 metadata): input size/layout/dtype, preprocessing,
classes, NMS, precision. Every backend produces one, so the Detector never needs to be told twice."""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from runtime.errors import DeployError

RAW_OUTPUTS = ("boxes", "scores")
NMS_OUTPUTS = ("num_detections", "detection_boxes", "detection_scores", "detection_classes")
DYNAMIC_BATCH = "dynamic:"   # metadata `batch`: "N" (static) or "dynamic:MIN,OPT,MAX"


def batch_profile(value: str) -> tuple[int, int, int]:
    """Metadata `batch` -> (min, opt, max): "dynamic:1,4,8" -> (1, 4, 8), "2" -> (2, 2, 2); ValueError if malformed."""
    if value.startswith(DYNAMIC_BATCH):
        lo, opt, hi = (int(v) for v in value[len(DYNAMIC_BATCH):].split(","))
        return lo, opt, hi
    return int(value), int(value), int(value)


@dataclass(frozen=True)
class ModelInfo:
    """Input contract and post-processing of one model file. Sizes are (H, W); mean/std in 0-255."""

    model: str
    image_size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    num_classes: int
    class_names: tuple[str, ...] = ()
    input_layout: str = "nchw"          # nchw | nhwc
    input_dtype: str = "float32"        # float32 | uint8
    preprocess: bool = True             # normalization inside the model
    nms: str = "efficient"              # efficient | onnx | none (raw boxes/scores: NMS done in numpy)
    score_threshold: float = 0.001
    iou_threshold: float = 0.5
    max_detections: int = 100
    pre_nms_top_k: int = 4096           # candidates kept before NMS (the plugin's 4096 for older files)
    batch: tuple[int, int] = (1, 1)     # (min, max) batch the file accepts
    precision: str = "fp32"
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_metadata(cls, meta: dict[str, str], source: str) -> "ModelInfo":
        """Parse an exported file's metadata_props; DeployError naming the file if it lacks them."""
        missing = [k for k in ("model", "image_size", "mean", "std", "num_classes") if k not in meta]
        if missing:
            raise DeployError(f"{source}: not an efficientdet-deploy export (metadata lacks {', '.join(missing)})")
        try:
            h, w = (int(v) for v in meta["image_size"].split(","))
            lo, _, hi = batch_profile(meta.get("batch", "1"))
            return cls(
                model=meta["model"], image_size=(h, w), mean=tuple(json.loads(meta["mean"])),
                std=tuple(json.loads(meta["std"])), num_classes=int(meta["num_classes"]),
                class_names=tuple(json.loads(meta.get("class_names", "[]"))),
                input_layout=meta.get("input_layout", "nchw"), input_dtype=meta.get("input_dtype", "float32"),
                preprocess=meta.get("preprocess", "1") == "1", nms=meta.get("nms", "efficient"),
                score_threshold=float(meta.get("score_threshold", 0.001)),
                iou_threshold=float(meta.get("iou_threshold", 0.5)),
                max_detections=int(meta.get("max_detections", 100)), batch=(lo, hi),
                pre_nms_top_k=int(meta.get("pre_nms_top_k", 4096)),
                precision=meta.get("precision", "fp32"), extra=dict(meta))
        except (ValueError, TypeError) as e:
            raise DeployError(f"{source}: malformed metadata ({e})") from None

    def class_name(self, cls: int) -> str:
        return self.class_names[cls] if 0 <= cls < len(self.class_names) else str(cls)
