"""Calibration data: one reader for ModelOpt, the legacy calibrator and the sensitivity search; odd files
converted or skipped with a count; the legacy calibrator's batch logic and cache I/O without TensorRT."""
import numpy as np
import pytest
from PIL import Image

from calibration.cache_file import CalibrationCache
from calibration.feeder import BatchFeeder
from calibration.images import CalibrationImages
from runtime.errors import DeployError
from runtime.image_io import read_image
from runtime.letterbox import letterbox
from runtime.model_info import ModelInfo
from runtime.preprocess import prepare_batch

INFO = ModelInfo(model="m", image_size=(64, 96), mean=(120.0, 110.0, 100.0), std=(60.0, 60.0, 60.0), num_classes=6)


@pytest.fixture()
def folder(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (50, 70, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    Image.fromarray(rgb[..., 0]).save(tmp_path / "gray.png")
    Image.fromarray(np.dstack([rgb, np.full((50, 70), 128, np.uint8)])).save(tmp_path / "rgba.png")
    Image.fromarray((rgb[..., 1].astype(np.uint16) * 257)).save(tmp_path / "deep16.png")
    Image.fromarray(rgb).save(tmp_path / "photo.jpg", quality=90)
    (tmp_path / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path


def test_odd_files_converted_or_skipped(folder):
    assert read_image(folder / "gray.png").shape == (50, 70, 3)
    assert read_image(folder / "rgba.png").shape == (50, 70, 3)
    deep = read_image(folder / "deep16.png")
    assert deep.dtype == np.uint8 and abs(int(deep[..., 0].astype(int).mean()) - int(read_image(folder / "rgb.png")[..., 1].mean())) <= 1
    images = CalibrationImages(folder, INFO, count=10, batch=2)
    data = images.array()
    assert data.shape == (5, 3, 64, 96) and data.dtype == np.float32   # 5 readable; the .txt is not listed
    assert list(images.skipped) == [str(folder / "corrupt.jpg")]


def test_same_preprocessing_as_runtime(folder):
    images = CalibrationImages(folder / "rgb.png", INFO, count=1, batch=1)
    expected = prepare_batch([letterbox(read_image(folder / "rgb.png"), INFO.image_size, INFO.mean)[0]], INFO)
    assert np.array_equal(images.array(), expected)


def test_fixed_seed_sampling_and_protocol(folder):
    a = CalibrationImages(folder, INFO, count=3, batch=2, seed=1)
    b = CalibrationImages(folder, INFO, count=3, batch=2, seed=1)
    assert np.array_equal(a.array(), b.array()) and a.used == b.used and len(a.used) == 3
    batches = list(a.batches())
    assert [x.shape[0] for x in batches] == [2, 2]                    # last batch padded to full size
    got = []
    while (item := a.get_next()) is not None:
        got.append(item["images"])
    assert sum(len(x) for x in got) == 3


def test_empty_or_unreadable_folder(tmp_path):
    with pytest.raises(DeployError, match="no images found"):
        CalibrationImages(tmp_path, INFO)
    (tmp_path / "bad.png").write_bytes(b"nope")
    with pytest.raises(DeployError, match="none of 1 image files is readable"):
        CalibrationImages(tmp_path, INFO).array()


def test_feeder_batches_and_end():
    batches = [np.ones((2, 3, 4, 4), np.float64), np.zeros((2, 3, 4, 4))]
    feeder = BatchFeeder(batches, (2, 3, 4, 4), np.float32)
    first = feeder.next_batch()
    assert first.dtype == np.float32 and first.flags.c_contiguous
    assert feeder.next_batch() is not None and feeder.next_batch() is None and feeder.served == 2
    with pytest.raises(DeployError, match=r"shape \(3, 3, 4, 4\), but TensorRT reads \(2, 3, 4, 4\)"):
        BatchFeeder([np.ones((3, 3, 4, 4))], (2, 3, 4, 4), np.float32).next_batch()
    mixed = BatchFeeder([np.ones((2, 3, 4, 4)), np.ones((2, 3, 5, 5))], (2, 3, 4, 4), np.float32)
    mixed.next_batch()
    with pytest.raises(DeployError, match="shape"):
        mixed.next_batch()


def test_cache_roundtrip_is_atomic(tmp_path):
    cache = CalibrationCache(tmp_path / "sub" / "model.calib.cache")
    assert cache.read() is None
    cache.write(memoryview(b"TRT-8601-EntropyCalibration2\nimages: 3c010a14\n"))
    assert cache.read().startswith(b"TRT-8601") and not list((tmp_path / "sub").glob("*.tmp"))
    cache.path.write_bytes(b"")
    with pytest.raises(DeployError, match="empty calibration cache"):
        cache.read()
