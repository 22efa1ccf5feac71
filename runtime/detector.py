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
from runtime.model_info import NMS_OUTPUTS, ModelInfo
from runtime.nms import NMSParams, efficient_nms
from runtime.preprocess import prepare_batch
from runtime.result import Detections

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
    raise DeployError(f"{path}: cannot tell the backend from the name (use .onnx, .engine/.plan, .pth, "
                      f"or pass backend= one of {', '.join(BACKENDS)})")


def load_backend(name: str, path: str | Path, device: str | None, **kwargs: Any) -> Backend:
    import importlib

    if name not in BACKENDS:
        raise DeployError(f"unknown backend '{name}'; known: {', '.join(BACKENDS)}")
    module, cls = BACKENDS[name].split(":")
    backend_cls = getattr(importlib.import_module(module), cls)
    backend: Backend = backend_cls(path, device, **kwargs)
    return backend


class Detector:
    """Detector(path, backend=None, device=None): backend picked from the file unless given.

    score_threshold: drop detections below it (on top of the file's own threshold).
    Extra keyword arguments go to the backend (torch: model=, image_size=; tensorrt: use_cuda_graph=).
    """

    def __init__(self, path: str | Path, backend: str | None = None, device: str | None = None,
                 score_threshold: float | None = None, **backend_options: Any) -> None:
        name = backend or backend_for(path)
        if name != "torch" and not Path(path).is_file():
            raise DeployError(f"{path}: file not found")
        self.backend = load_backend(name, path, device, **backend_options)
        self.info: ModelInfo = self.backend.info
        self.score_threshold = score_threshold
        self.timings: dict[str, float] = {}   # seconds per phase of the last detect() call
        self._lock = threading.Lock()

    def __enter__(self) -> "Detector":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.backend.close()

    def detect(self, images: np.ndarray | Sequence[np.ndarray]) -> Any:
        """One image -> Detections; a list of images -> list of Detections (same order)."""
        single = isinstance(images, np.ndarray)
        batch_list: list[np.ndarray] = [images] if isinstance(images, np.ndarray) else list(images)
        if not batch_list:
            raise DeployError("detect() got an empty list of images")
        results: list[Detections] = []
        lo, hi = self.info.batch
        totals = {"preprocess": 0.0, "inference": 0.0, "postprocess": 0.0}
        for start in range(0, len(batch_list), hi):
            results.extend(self._detect_chunk(batch_list[start:start + hi], lo))
            totals = {k: totals[k] + self.timings[k] for k in totals}
        self.timings = totals
        return results[0] if single else results

    def _detect_chunk(self, images: list[np.ndarray], min_batch: int) -> list[Detections]:
        t0 = time.perf_counter()
        boxes_in = [letterbox(check_image(im), self.info.image_size, self.info.mean) for im in images]
        batch = prepare_batch([p[0] for p in boxes_in], self.info, min_batch)
        t1 = time.perf_counter()
        with self._lock:
            outputs = self.backend.run(batch)
        t2 = time.perf_counter()
        results = self.postprocess(outputs, [p[1] for p in boxes_in])
        self.timings = {"preprocess": t1 - t0, "inference": t2 - t1, "postprocess": time.perf_counter() - t2}
        return results

    def postprocess(self, outputs: dict[str, np.ndarray], boxes_in: list[Letterbox]) -> list[Detections]:
        """Backend outputs -> Detections per image in original pixels (raw outputs get the numpy NMS)."""
        if all(k in outputs for k in NMS_OUTPUTS):
            num, boxes, scores, classes = (outputs[k] for k in NMS_OUTPUTS)
        elif "boxes" in outputs and "scores" in outputs:
            info = self.info
            params = NMSParams(score_threshold=info.score_threshold, iou_threshold=info.iou_threshold,
                               max_output_boxes=info.max_detections, score_activation=False,
                               top_k=info.pre_nms_top_k)
            num, boxes, scores, classes = efficient_nms(outputs["boxes"], outputs["scores"], None, params)
        else:
            raise DeployError(f"{self.backend.path}: unexpected outputs {sorted(outputs)}")
        results = []
        for i, lb in enumerate(boxes_in):
            det = Detections.from_padded(int(num[i, 0]), boxes[i], scores[i], classes[i])
            keep = det.scores >= self.score_threshold if self.score_threshold is not None else slice(None)
            results.append(Detections(to_original(det.boxes[keep], lb), det.scores[keep], det.classes[keep]))
        return results
