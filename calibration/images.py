"""Calibration images as a protocol (onnxruntime's CalibrationDataReader.get_next()): one reader feeds
ModelOpt, the legacy TensorRT calibrator and the sensitivity analysis, with exactly the runtime's
letterbox and preprocessing, so INT8 ranges are measured on what the deployed model will see.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from runtime.errors import DeployError
from runtime.image_io import list_images, read_image
from runtime.letterbox import letterbox
from runtime.log import logger
from runtime.model_info import ModelInfo
from runtime.preprocess import prepare_batch


class CalibrationImages:
    """`count` images sampled from `folder` with a fixed seed, served as prepared batches of `batch`.

    Unreadable files are skipped and counted (`skipped`: path -> reason); grayscale, RGBA and 16-bit
    files are converted by the runtime's reader. No readable image at all is a DeployError.
    """

    def __init__(self, folder: str | Path, info: ModelInfo, count: int = 500, batch: int = 8, seed: int = 0,
                 input_name: str = "images") -> None:
        if count < 1 or batch < 1:
            raise DeployError(f"--calib-images ({count}) and --calib-batch ({batch}) must be at least 1")
        files = list_images(folder)
        order = np.random.default_rng(seed).permutation(len(files))
        self.files = [files[i] for i in order]
        self.info, self.count, self.batch, self.input_name = info, count, batch, input_name
        self.skipped: dict[str, str] = {}
        self.used: list[Path] = []
        self._cache: np.ndarray | None = None
        self._next = 0

    def _load(self) -> np.ndarray:
        """All calibration images as one prepared array [N, ...] (read once, in sampled order)."""
        if self._cache is not None:
            return self._cache
        prepared = []
        for path in self.files:
            if len(prepared) == self.count:
                break
            try:
                image = read_image(path)
            except DeployError as e:
                self.skipped[str(path)] = str(e)
                continue
            prepared.append(letterbox(image, self.info.image_size, self.info.mean)[0])
            self.used.append(path)
            if len(prepared) % 50 == 0:
                logger.info(f"calibration images: {len(prepared)}/{self.count}")
        if not prepared:
            raise DeployError(f"{self.files[0].parent}: none of {len(self.files)} image files is readable")
        if self.skipped:
            logger.warning(f"calibration: skipped {len(self.skipped)} unreadable file(s), e.g. {next(iter(self.skipped.values()))}")
        self._cache = prepare_batch(prepared, self.info)
        return self._cache

    def array(self) -> np.ndarray:
        """Every calibration image, prepared: [N, ...] in the file's layout and dtype."""
        return self._load()

    def batches(self) -> Iterator[np.ndarray]:
        """Full batches of `batch` images (the last one padded by repeating images, as TensorRT needs)."""
        data = self._load()
        for start in range(0, len(data), self.batch):
            chunk = data[start:start + self.batch]
            if len(chunk) < self.batch:
                chunk = np.concatenate([chunk, data[: self.batch - len(chunk)]])
                while len(chunk) < self.batch:
                    chunk = np.concatenate([chunk, chunk])[: self.batch]
            yield np.ascontiguousarray(chunk)

    def get_next(self) -> dict[str, np.ndarray] | None:
        """CalibrationDataReader protocol: {input name: one batch}, then None when done."""
        data = self._load()
        if self._next >= len(data):
            return None
        chunk = data[self._next:self._next + self.batch]
        self._next += self.batch
        return {self.input_name: chunk}

    def rewind(self) -> None:
        self._next = 0
