"""The work of the python-backend models (runtime/triton_models/), kept out of Triton's files so it is plain
code: a served Detector (encoded images in, one Detector call per Triton batch, padded detections out) and the
ensemble's pre- and post-processing steps around a native model. A bad request gets its own error message;
the rest of its batch is still answered."""
from __future__ import annotations

from pathlib import Path
from typing import Union

import numpy as np

from runtime.errors import DeployError
from runtime.letterbox import Letterbox, letterbox, to_original
from runtime.model_info import NMS_OUTPUTS, ModelInfo
from runtime.nms import NMSParams, efficient_nms
from runtime.preprocess import prepare_batch
from runtime.result import Detections
from runtime.served import MAX_BYTES, MAX_PIXELS, decode_image, pack
from runtime.thresholds import DEFAULT_SCORE_THRESHOLD, apply_filters, effective_filters

Reply = Union[dict[str, np.ndarray], str]      # output tensors, or the error message for that request


def _float_or_none(value: str | None, default: float | None) -> float | None:
    return default if value is None else (None if value in ("", "none") else float(value))


class Limits:
    """Per-model request limits and filters from the config parameters (strings), with the toolkit defaults."""

    def __init__(self, params: dict[str, str]) -> None:
        self.max_bytes = int(params.get("max_bytes", MAX_BYTES))
        self.max_pixels = int(params.get("max_pixels", MAX_PIXELS))
        self.score = _float_or_none(params.get("score_threshold"), DEFAULT_SCORE_THRESHOLD)
        self.iou = _float_or_none(params.get("iou_threshold"), None)
        max_det = params.get("max_detections")
        self.max_det = int(max_det) if max_det not in (None, "", "none") else None

    def decode_rows(self, tensor: np.ndarray) -> list[np.ndarray]:
        """One request's IMAGE tensor [rows, nbytes] uint8 -> decoded images (DeployError on any bad row)."""
        if tensor.dtype != np.uint8 or tensor.ndim != 2:
            raise DeployError(f"IMAGE must be UINT8 [batch, bytes], got {tensor.dtype} {list(tensor.shape)}")
        return [decode_image(row, self.max_bytes, self.max_pixels) for row in tensor]


def _decode_all(limits: Limits, tensors: list[np.ndarray]) -> tuple[list[list[np.ndarray]], dict[int, str]]:
    images, errors = [], {}
    for i, tensor in enumerate(tensors):
        try:
            images.append(limits.decode_rows(tensor))
        except DeployError as e:
            images.append([])
            errors[i] = str(e)
    return images, errors


class ServedDetector:
    """The `detector` model: a Detector over the file (device from Triton's instance) and its request limits."""

    def __init__(self, model_file: Path, params: dict[str, str], device: str | None) -> None:
        from runtime.detector import Detector

        self.limits = Limits(params)
        self.detector = Detector(model_file, device=device, score_threshold=self.limits.score,
                                 iou_threshold=self.limits.iou, max_detections=self.limits.max_det)
        self.k = self.detector.info.max_detections

    def run(self, tensors: list[np.ndarray]) -> list[Reply]:
        """One Triton batch: each request's rows decoded, all good images in one detect() call."""
        images, errors = _decode_all(self.limits, tensors)
        flat = [im for i, ims in enumerate(images) if i not in errors for im in ims]
        try:
            found = self.detector.detect(flat) if flat else []
        except Exception as e:                   # the model itself failed: every request of the batch hears it
            return [f"inference failed: {type(e).__name__}: {e}"] * len(tensors)
        replies: list[Reply] = []
        start = 0
        for i, ims in enumerate(images):
            replies.append(errors[i] if i in errors else pack(found[start:start + len(ims)], self.k))
            start += len(ims)
        return replies

    def close(self) -> None:
        self.detector.close()


class PreProcess:
    """The ensemble's first step: encoded image -> the native model's `images` tensor + its letterbox row."""

    def __init__(self, info: ModelInfo, params: dict[str, str]) -> None:
        self.info, self.limits = info, Limits(params)

    def run(self, tensors: list[np.ndarray]) -> list[Reply]:
        images, errors = _decode_all(self.limits, tensors)
        replies: list[Reply] = []
        for i, ims in enumerate(images):
            if i in errors:
                replies.append(errors[i])
                continue
            boxed = [letterbox(im, self.info.image_size, self.info.mean) for im in ims]
            rows = [[lb.scale, *lb.original_hw] for _, lb in boxed]
            replies.append({"images": prepare_batch([b for b, _ in boxed], self.info),
                            "letterbox": np.asarray(rows, np.float32)})
        return replies


class PostProcess:
    """The ensemble's last step: the native model's outputs (network-input pixels) + letterbox rows ->
    the four NMS outputs in original-image pixels, filtered as the Detector filters."""

    def __init__(self, info: ModelInfo, params: dict[str, str]) -> None:
        self.info, self.limits = info, Limits(params)
        self.filters = effective_filters(info, self.limits.score, self.limits.iou, self.limits.max_det)

    def run(self, requests: list[dict[str, np.ndarray]]) -> list[Reply]:
        return [pack(self.detections(r), self.info.max_detections) for r in requests]

    def detections(self, tensors: dict[str, np.ndarray]) -> list[Detections]:
        """Mirrors Detector.postprocess: NMS outputs as they are, raw boxes/scores through the numpy NMS."""
        info = self.info
        if "net_boxes" in tensors:
            params = NMSParams(score_threshold=max(info.score_threshold, self.filters[0] or 0.0),
                               iou_threshold=info.iou_threshold, max_output_boxes=info.max_detections,
                               score_activation=False, top_k=info.pre_nms_top_k)
            num, boxes, scores, classes = efficient_nms(tensors["net_boxes"], tensors["net_scores"], None, params)
        else:
            num, boxes, scores, classes = (tensors[f"net_{k}"] for k in NMS_OUTPUTS)
        found = []
        for i, (scale, h, w) in enumerate(tensors["letterbox"]):
            lb = Letterbox(float(scale), (int(h), int(w)), info.image_size)
            det = Detections.from_padded(int(num[i, 0]), boxes[i], scores[i], classes[i])
            found.append(apply_filters(Detections(to_original(det.boxes, lb), det.scores, det.classes),
                                       *self.filters))
        return found
