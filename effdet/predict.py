"""The PyTorch reference: model -> decode -> EfficientNMS semantics, on the same numpy code the runtime uses.

Exported graphs are compared against this.
"""
from __future__ import annotations

import numpy as np
import torch

from effdet.model import EfficientDet
from runtime.anchors import generate_anchors
from runtime.boxes import decode_boxes
from runtime.letterbox import Letterbox, letterbox, to_original
from runtime.nms import NMSParams, efficient_nms
from runtime.result import Detections
from runtime.thresholds import DEFAULT_SCORE_THRESHOLD


def model_anchors(model: EfficientDet, image_hw: tuple[int, int]) -> np.ndarray:
    c = model.config
    return generate_anchors(image_hw, c.min_level, c.max_level, c.num_scales, c.aspect_ratios, c.anchor_scale)


@torch.no_grad()
def raw_outputs(model: EfficientDet, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[B,H,W,3] uint8/float 0-255 RGB -> (boxes [B,N,4] xyxy input pixels, scores [B,N,C] sigmoid)."""
    c = model.config
    x = (batch.astype(np.float32) - np.asarray(c.mean, np.float32)) / np.asarray(c.std, np.float32)
    param = next(model.parameters())          # the input follows the model's device and dtype (e.g. .half())
    cls, box = model(torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).to(param.device, param.dtype))
    anchors = model_anchors(model, batch.shape[1:3])
    return decode_boxes(box.float().cpu().numpy(), anchors), torch.sigmoid(cls.float()).cpu().numpy()


def detect_batch(model: EfficientDet, batch: np.ndarray, params: NMSParams) -> tuple[np.ndarray, ...]:
    """[B,H,W,3] network-input images -> the four EfficientNMS outputs (boxes in input pixels)."""
    boxes, scores = raw_outputs(model, batch)
    return efficient_nms(boxes, scores, None, NMSParams(**{**params.__dict__, "score_activation": False}))


def detect(model: EfficientDet, images: list[np.ndarray],
           params: NMSParams = NMSParams(score_threshold=DEFAULT_SCORE_THRESHOLD)) -> list[Detections]:
    """Original HxWx3 uint8 RGB images -> Detections in original pixels (letterboxed to the model size)."""
    prepared: list[tuple[np.ndarray, Letterbox]] = [letterbox(im, model.config.image_size, model.config.mean)
                                                    for im in images]
    num, boxes, scores, classes = detect_batch(model, np.stack([p[0] for p in prepared]), params)
    results = []
    for i, (_, lb) in enumerate(prepared):
        n = int(num[i, 0])
        results.append(Detections(to_original(boxes[i, :n], lb), scores[i, :n], classes[i, :n].astype(np.int64)))
    return results
