"""The Detector sends a backend only the batch sizes it accepts: a TensorRT engine's optimization profile
may be narrower than the ONNX file's metadata (issue 11.8)."""
from __future__ import annotations

import numpy as np

from runtime.backends.base import Backend
from runtime.errors import DeployError
from runtime.model_info import NMS_OUTPUTS, ModelInfo


class ProfileBackend(Backend):
    """A backend whose run() accepts batches of 2..3 only (as a TensorRT profile would) while the file's
    metadata says 1..8."""

    name = "profile-test"
    batches: list[int] = []

    def open(self) -> ModelInfo:
        return ModelInfo(model="t", image_size=(64, 64), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), num_classes=2,
                         batch=(1, 8))

    def batch_limits(self) -> tuple[int, int]:
        return 2, 3

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        n = batch.shape[0]
        if not 2 <= n <= 3:
            raise DeployError(f"batch {n} is outside the profile 2..3")
        self.batches.append(n)
        shapes = {"num_detections": (n, 1), "detection_boxes": (n, 5, 4), "detection_scores": (n, 5),
                  "detection_classes": (n, 5)}
        return {k: np.zeros(shapes[k], np.int32 if k in ("num_detections", "detection_classes") else np.float32)
                for k in NMS_OUTPUTS}


def test_detector_batches_follow_the_backend_profile(monkeypatch, tmp_path):
    from runtime import detector

    model = tmp_path / "m.engine"
    model.write_bytes(b"\x00")
    monkeypatch.setitem(detector.BACKENDS, "profile-test", f"{__name__}:ProfileBackend")
    ProfileBackend.batches = []
    images = [np.full((48, 40, 3), i * 30, np.uint8) for i in range(7)]
    results = detector.Detector(model, backend="profile-test").detect(images)
    assert len(results) == 7 and ProfileBackend.batches == [3, 3, 2]
