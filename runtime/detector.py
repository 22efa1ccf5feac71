"""`Detector`: one object over every backend. Images in (HxWx3 uint8 RGB, any size), Detections out in
original-image pixels. The file's metadata decides layout, dtype, normalization and post-processing.

Thread safety: one Detector may be shared by threads; `detect` serializes calls to the backend with a
lock (a TensorRT execution context and its buffers are not re-entrant). For parallelism, give each
thread its own Detector (one execution context per thread).
"""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from runtime.backends.base import Backend
from runtime.errors import DeployError
from runtime.letterbox import Letterbox, check_image, letterbox, to_original
from runtime.log import logger
from runtime.model_info import NMS_OUTPUTS, ModelInfo
from runtime.nms import NMSParams, efficient_nms
from runtime.preprocess import prepare_batch
from runtime.result import Detections
from runtime.thresholds import DEFAULT_SCORE_THRESHOLD, apply_filters, check_filters, effective_filters

# backend name -> "module:Class"; imported only when chosen, so ONNX users never import tensorrt or torch.
BACKENDS: dict[str, str] = {
    "onnxruntime": "runtime.backends.onnxruntime_backend:OnnxRuntimeBackend",
    "tensorrt": "runtime.backends.tensorrt_backend:TensorRTBackend",
    "torch": "runtime.backends.torch_backend:TorchBackend",
}
SUFFIXES: dict[str, str] = {".onnx": "onnxruntime", ".engine": "tensorrt", ".plan": "tensorrt", ".trt": "tensorrt",
                            ".pth": "torch", ".pt": "torch", ".ckpt": "torch"}


def backend_for(path: str | Path) -> str:
    """The backend a file calls for, from its suffix (a shipped model name such as shapes_d0 -> torch)."""
    suffix = Path(path).suffix.lower()
    if suffix in SUFFIXES:
        return SUFFIXES[suffix]
    from runtime.backends.torch_backend import has_shipped_weights

    if has_shipped_weights(str(path)):
        return "torch"
    if not suffix and not Path(path).exists():
        raise DeployError(f"{path}: no such file, and no model of that name ships weights (e.g. shapes_d0)")
    raise DeployError(f"{path}: cannot tell the backend from the name (use .onnx, .engine/.plan, .pth, or give "
                      f"backend= / --backend, one of {', '.join(BACKENDS)})")


def load_backend(name: str, path: str | Path, device: str | None, **kwargs: Any) -> Backend:
    import importlib
    import inspect

    if name not in BACKENDS:
        raise DeployError(f"unknown backend '{name}'; known: {', '.join(BACKENDS)}")
    module, cls = BACKENDS[name].split(":")
    backend_cls: type[Backend] = getattr(importlib.import_module(module), cls)
    accepted = set(inspect.signature(backend_cls.__init__).parameters)
    foreign = [k for k, v in kwargs.items() if k not in accepted and v is not None]
    if foreign:   # e.g. --arch / --image-size (torch options) given with an .onnx file
        named = ", ".join(f"{k}= (--{k.replace('_', '-')})" if k != "model" else "model= (--arch)" for k in foreign)
        raise DeployError(f"{path}: {named} does not apply to the {name} backend (PyTorch checkpoints take "
                          "model= and image_size=, engines use_cuda_graph=, ONNX Runtime and PyTorch threads=)")
    return backend_cls(path, device, **{k: v for k, v in kwargs.items() if k in accepted})


class Detector:
    """Detector(path, backend=None, device=None): backend picked from the file unless given.

    score_threshold (default DEFAULT_SCORE_THRESHOLD, 0.3), iou_threshold, max_detections: filters applied
    within what the file keeps (runtime/thresholds.py); the file's own NMS settings are the floor.
    score_threshold 0 or None: every detection the file keeps (what COCO mAP needs); iou_threshold /
    max_detections None: the file's. `detect()` takes the same three per call.
    Extra keyword arguments go to the backend (torch: model=, image_size=; tensorrt: use_cuda_graph=).
    """

    def __init__(self, path: str | Path, backend: str | None = None, device: str | None = None,
                 score_threshold: float | None = DEFAULT_SCORE_THRESHOLD, iou_threshold: float | None = None,
                 max_detections: int | None = None, **backend_options: Any) -> None:
        check_filters(score_threshold, iou_threshold, max_detections)
        name = backend or backend_for(path)
        if name != "torch" and not Path(path).is_file():
            raise DeployError(f"{path}: file not found")
        self.backend = load_backend(name, path, device, **backend_options)
        self.info: ModelInfo = self.backend.info
        if self.info.extra.get("weights") == "random":
            logger.warning("%s: exported with RANDOM weights (no checkpoint): its detections are meaningless", path)
        self.score_threshold, self.iou_threshold, self.max_detections = score_threshold, iou_threshold, max_detections
        self._warned: set[str] = set()        # filter requests beyond the file already warned about
        self.timings: dict[str, float] = {}   # seconds per phase of the last detect() call
        self._lock = threading.Lock()

    def __enter__(self) -> "Detector":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.backend.close()

    def detect(self, images: object, score_threshold: float | None = None, iou_threshold: float | None = None,
               max_detections: int | None = None) -> Any:
        """One image (HxWx3 uint8 RGB array or PIL image) -> Detections; a list -> list of Detections.
        Filters given here replace the Detector's for this call (None: the Detector's)."""
        single = not isinstance(images, (list, tuple))
        batch_list: list[object] = list(images) if isinstance(images, (list, tuple)) else [images]   # narrowed for mypy
        if not batch_list:
            raise DeployError("detect() got an empty list of images")
        check_filters(score_threshold, iou_threshold, max_detections)
        filters = effective_filters(
            self.info, self.score_threshold if score_threshold is None else score_threshold,
            self.iou_threshold if iou_threshold is None else iou_threshold,
            self.max_detections if max_detections is None else max_detections, self._warned)
        results: list[Detections] = []
        lo, hi = self.backend.batch_limits()     # an engine's profile may be narrower than the ONNX metadata
        totals = {"preprocess": 0.0, "inference": 0.0, "postprocess": 0.0}
        for start in range(0, len(batch_list), hi):
            results.extend(self._detect_chunk(batch_list[start:start + hi], lo, filters))
            totals = {k: totals[k] + self.timings[k] for k in totals}
        self.timings = totals
        return results[0] if single else results

    def _detect_chunk(self, images: list[object], min_batch: int,
                      filters: tuple[float | None, float | None, int | None]) -> list[Detections]:
        t0 = time.perf_counter()
        boxes_in = [letterbox(check_image(im), self.info.image_size, self.info.mean) for im in images]
        batch = prepare_batch([p[0] for p in boxes_in], self.info, min_batch)
        t1 = time.perf_counter()
        with self._lock:
            outputs = self.backend.run(batch)
        t2 = time.perf_counter()
        results = [apply_filters(r, *filters) for r in self.postprocess(outputs, [p[1] for p in boxes_in], filters[0])]
        self.timings = {"preprocess": t1 - t0, "inference": t2 - t1, "postprocess": time.perf_counter() - t2}
        return results

    def postprocess(self, outputs: dict[str, np.ndarray], boxes_in: list[Letterbox],
                    score_filter: float | None = None) -> list[Detections]:
        """Backend outputs -> Detections per image in original pixels (raw outputs get the numpy NMS).

        score_filter: the score threshold applied afterwards, if any. The numpy NMS then starts from it instead of
        the file's floor: the same detections above it (candidates are the same top-k prefix, and a box is only
        ever suppressed by higher-scoring ones), without walking thousands of low scores (shapes_d0 at 0.001:
        ~17 ms per image)."""
        if all(k in outputs for k in NMS_OUTPUTS):
            num, boxes, scores, classes = (outputs[k] for k in NMS_OUTPUTS)
        elif "boxes" in outputs and "scores" in outputs:
            info = self.info
            floor = max(info.score_threshold, score_filter or 0.0)
            params = NMSParams(score_threshold=floor, iou_threshold=info.iou_threshold,
                               max_output_boxes=info.max_detections, score_activation=False,
                               top_k=info.pre_nms_top_k)
            num, boxes, scores, classes = efficient_nms(outputs["boxes"], outputs["scores"], None, params)
        else:
            raise DeployError(f"{self.backend.path}: unexpected outputs {sorted(outputs)}")
        results = []
        for i, lb in enumerate(boxes_in):
            det = Detections.from_padded(int(num[i, 0]), boxes[i], scores[i], classes[i])
            results.append(Detections(to_original(det.boxes, lb), det.scores, det.classes))
        return results
