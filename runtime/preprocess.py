"""Letterboxed uint8 images -> the batch a model file takes (layout, dtype, normalization from its
ModelInfo). Shared by the Detector and by calibration, so INT8 is calibrated on exactly what runs."""
from __future__ import annotations

import numpy as np

from runtime.model_info import ModelInfo


def prepare_batch(inputs: list[np.ndarray], info: ModelInfo, min_batch: int = 1) -> np.ndarray:
    """[h,w,3] uint8 network-input images -> contiguous batch; padded with black images to min_batch."""
    batch = np.stack(inputs + [np.zeros_like(inputs[0])] * max(0, min_batch - len(inputs)))
    if info.input_dtype == "uint8":
        out = batch
    elif info.preprocess:
        out = batch.astype(np.float32)
    else:
        out = (batch.astype(np.float32) - np.asarray(info.mean, np.float32)) / np.asarray(info.std, np.float32)
    if info.input_layout == "nchw":
        out = out.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(out)
