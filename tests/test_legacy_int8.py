"""Legacy implicit INT8 (`build --int8 --calib-cache/--calib-dir` on an FP32 file) without TensorRT:
TensorRT 11 is refused with one line before the calibrator classes are touched (11.0 removed them), and
the calibration feed serves the bytes of the file's own input type (uint8 files get uint8, not float32), in
exactly the shape TensorRT reads, keeping every callback's error; on a GPU with TensorRT 8.6-10.x the
`tensorrt` tier calibrates a real engine and replays its cache."""
import sys
import types

import numpy as np
import pytest
from PIL import Image

from calibration.feeder import image_feed
from effdet_deploy import cli
from effdet_deploy.commands import build
from export.build_plan import BuildSettings, calibration_shape, onnx_input, profile_shapes
from runtime.errors import DeployError
from runtime.image_io import read_image
from runtime.letterbox import letterbox
from runtime.model_info import ModelInfo
from runtime.preprocess import prepare_batch
from runtime.trt_compat import has_legacy_precision_flags
from trt_helpers import needs_trt


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """shapes_d0 at 128 px exported with a float32 and a uint8 input, and three calibration images."""
    from export.onnx_export import export_onnx
    from export.settings import ExportSettings

    tmp = tmp_path_factory.mktemp("legacy_int8")
    out = {dtype: export_onnx(ExportSettings(model="shapes_d0", output=tmp / f"{dtype}.onnx", image_size=(128, 128),
                                             input_dtype=dtype)) for dtype in ("float32", "uint8")}
    calib = tmp / "calib"
    calib.mkdir()
    rng = np.random.default_rng(0)
    for i, size in enumerate(((90, 120), (128, 100), (60, 60))):
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(calib / f"{i}.png")
    out["calib"] = calib
    return out


def test_build_refuses_tensorrt_11_before_importing_the_calibrators(files, tmp_path, monkeypatch, capsys):
    """TensorRT 11.0 has no IInt8*Calibrator: `build --int8 --calib-dir` gave an AttributeError traceback from
    calibration/legacy.py's import. The build's precision check now runs first (calibration.legacy made
    unimportable here: reaching its import fails the test)."""
    monkeypatch.setattr(build, "require_tensorrt", lambda: "11.0.0")
    monkeypatch.setitem(sys.modules, "calibration.legacy", None)
    code = cli.main(["build", "--onnx", str(files["float32"]), "--engine", str(tmp_path / "m.engine"), "--int8",
                     "--calib-cache", str(tmp_path / "m.cache"), "--calib-dir", str(files["calib"])])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "TensorRT 11.0.0" in err and "Traceback" not in err
    assert not (tmp_path / "m.engine").exists() and not (tmp_path / "m.cache").exists()


def test_check_before_calibrating_lets_tensorrt_10_through(files, tmp_path):
    inp = onnx_input(files["float32"])
    s = BuildSettings(onnx=files["float32"], engine=tmp_path / "m.engine", int8=True,
                      calib_cache=tmp_path / "m.cache", calib_dir=files["calib"])
    build.check_before_calibrating(s, inp, "10.13.0.35")
    build.check_before_calibrating(s, inp, "8.6.1")
    for version in ("11.0.0", "11.4.1"):
        with pytest.raises(DeployError, match=f"TensorRT {version}"):
            build.check_before_calibrating(s, inp, version)
        with pytest.raises(DeployError, match=f"TensorRT {version} has no --int8 builder flag "):
            build.check_before_calibrating(BuildSettings(**{**vars(s), "strongly_typed": False}), inp, version)



def test_check_before_calibrating_refuses_metadata_that_misstates_the_input_type(files, tmp_path):
    """Batches are served in the metadata's input_dtype; a file whose graph input is another type is refused."""
    import dataclasses

    inp = onnx_input(files["uint8"])
    assert inp.dtype == "uint8" and inp.meta["input_dtype"] == "uint8"
    s = BuildSettings(onnx=files["uint8"], engine=tmp_path / "m.engine", int8=True, calib_cache=tmp_path / "m.cache",
                      calib_dir=files["calib"])
    build.check_before_calibrating(s, inp, "10.13.0.35")
    wrong = dataclasses.replace(inp, meta={**inp.meta, "input_dtype": "float32"})
    with pytest.raises(DeployError, match="metadata says input_dtype float32, but input 'images' is uint8"):
        build.check_before_calibrating(s, wrong, "10.13.0.35")


def test_calibrator_classes_are_made_only_where_tensorrt_has_them(tmp_path):
    """calibration.legacy imports without TensorRT (no class is defined at import time); a tensorrt module
    lacking the IInt8 calibrators (11.0; the stand-in says only that) is refused with one line."""
    from calibration import legacy

    with pytest.raises(DeployError, match=r"TensorRT 11\.0\.0 has no IInt8EntropyCalibrator2/IInt8MinMaxCalibrator: "
                                          r"implicit INT8 calibration was removed in TensorRT 11\.0"):
        legacy.require_calibrator_bases(types.ModuleType("tensorrt"), "11.0.0")
    if "tensorrt" not in sys.modules:   # here: the one line naming what to install, before any file is touched
        with pytest.raises(DeployError, match="this needs TensorRT"):
            legacy.calibration_from_images(tmp_path / "m.cache", tmp_path, {}, "m.onnx", (1, 3, 8, 8), "images", 1,
                                           "entropy")
        assert not list(tmp_path.iterdir())


class HostStaging:
    """Stages batches in host memory and returns their real address, as DeviceStaging does on a GPU; keeps
    each served batch (alive while its address is in use, and to check what TensorRT would read)."""

    def __init__(self):
        self.served = []

    def __call__(self, batch):
        self.served.append(batch)
        return batch.ctypes.data


@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_feed_serves_the_files_input_dtype(files, tmp_path, dtype):
    """Batches in the ONNX input's type and shape, byte for byte what the runtime's prepare_batch gives
    (TensorRT reads the engine input's type from the address; float32 bytes for a uint8 input were garbage)."""
    path = files[dtype]
    inp = onnx_input(path)
    s = BuildSettings(onnx=path, engine=tmp_path / "m.engine", int8=True, calib_cache=tmp_path / "m.cache")
    shape = calibration_shape(s, inp.dims, profile_shapes(s, inp.name, inp.dims, inp.meta))
    stage = HostStaging()
    feed = image_feed(tmp_path / "m.cache", files["calib"], inp.meta, str(path), shape, inp.name, 3, stage)
    while feed.get_batch([inp.name]) is not None:
        pass
    feed.raise_kept()
    info = ModelInfo.from_metadata(inp.meta, str(path))
    assert info.input_dtype == dtype and shape == (1, 3, 128, 128)
    expected = sorted(prepare_batch([letterbox(read_image(f), info.image_size, info.mean)[0]], info).tobytes()
                      for f in files["calib"].iterdir())
    assert [(b.dtype, b.shape) for b in stage.served] == [(np.dtype(dtype), shape)] * 3
    assert sorted(b.tobytes() for b in stage.served) == expected


def test_feed_refuses_a_batch_of_another_kind(tmp_path):
    """A float batch for a uint8 input is not converted (its values are not pixels); float64 for float32 is."""
    from calibration.cache_file import CalibrationCache
    from calibration.feeder import CalibrationFeed

    stage = HostStaging()
    feed = CalibrationFeed([np.zeros((1, 3, 4, 4), np.float32)], (1, 3, 4, 4), "images", stage,
                           CalibrationCache(tmp_path / "c.cache"), "uint8")
    assert feed.get_batch(["images"]) is None and not stage.served
    with pytest.raises(DeployError, match="calibration batch 0 is float32, but TensorRT reads the input as uint8"):
        feed.raise_kept()
    feed = CalibrationFeed([np.ones((1, 3, 4, 4), np.float64)], (1, 3, 4, 4), "images", stage,
                           CalibrationCache(tmp_path / "c.cache"), "float32")
    assert feed.get_batch(["images"]) is not None and stage.served[0].dtype == np.float32


def _feed(tmp_path, batches, shape=(2, 3, 4, 4), stage=None, cache_bytes=None):
    from calibration.cache_file import CalibrationCache
    from calibration.feeder import CalibrationFeed

    cache = CalibrationCache(tmp_path / "c.cache")
    if cache_bytes is not None:
        cache.path.write_bytes(cache_bytes)
    return CalibrationFeed(batches, shape, "images", stage or HostStaging(), cache, "float32")


def test_calibration_feed_serves_exactly_the_shape_tensorrt_reads(tmp_path):
    import ctypes

    import numpy as np

    rng = np.random.default_rng(0)
    batches = [rng.random((2, 3, 4, 4)) for _ in range(2)]
    feed = _feed(tmp_path, iter(batches))
    assert feed.get_batch_size() == 2
    for expected in batches:
        (ptr,) = feed.get_batch(["images"])
        got = np.frombuffer((ctypes.c_float * expected.size).from_address(ptr), np.float32).reshape(expected.shape)
        np.testing.assert_array_equal(got, expected.astype(np.float32))
    assert feed.get_batch(["images"]) is None and feed.kept is None   # the end: None, no error
    feed.raise_kept()


def test_calibration_feed_keeps_a_wrong_batch_and_reraises_it(tmp_path):
    """A batch of 8 for a batch-1 input: TensorRT would read 1 image of every 8; a batch of 1 for OPT 4 would
    be read past its end. Both stop calibration and surface after the build with the real message."""
    import numpy as np

    for served in ((8, 3, 4, 4), (1, 3, 4, 4)):
        feed = _feed(tmp_path, [np.zeros(served)], shape=(4, 3, 4, 4) if served[0] == 1 else (1, 3, 4, 4))
        assert feed.get_batch(["images"]) is None
        assert feed.get_batch(["images"]) is None                       # stays stopped
        with pytest.raises(DeployError, match=rf"shape \({served[0]}, 3, 4, 4\), but TensorRT reads"):
            feed.raise_kept()


def test_calibration_feed_keeps_errors_of_every_callback(tmp_path):
    import numpy as np

    def broken(batch):
        raise MemoryError("cudaMallocHost failed")

    feed = _feed(tmp_path, [np.zeros((2, 3, 4, 4))], stage=broken)
    assert feed.get_batch(["images"]) is None
    with pytest.raises(DeployError, match="INT8 calibration failed in get_batch: MemoryError: cudaMallocHost failed"):
        feed.raise_kept()
    feed = _feed(tmp_path, None, cache_bytes=b"")                       # an empty cache file
    assert feed.read_cache() is None
    with pytest.raises(DeployError, match="empty calibration cache"):
        feed.raise_kept()
    feed = _feed(tmp_path, [np.zeros((2, 3, 4, 4))])
    assert feed.get_batch(["images", "other"]) is None                  # one address per name, or none
    with pytest.raises(DeployError, match=r"\['images', 'other'\]"):
        feed.raise_kept()
    feed = _feed(tmp_path, [])
    assert feed.get_batch(["images"]) is None
    with pytest.raises(DeployError, match="no image batch at all"):
        feed.raise_kept()


def test_calibration_feed_writes_the_cache_atomically(tmp_path):
    feed = _feed(tmp_path, None)
    feed.write_cache(memoryview(b"TRT-8601-EntropyCalibration2\nimages: 3c010a14\n"))
    assert feed.read_cache().startswith(b"TRT-8601") and feed.kept is None
    feed.cache.path = tmp_path / "missing-dir-is-a-file"
    feed.cache.path.write_text("x")
    feed.cache.path = feed.cache.path / "c.cache"                       # parent is a file: write fails
    feed.write_cache(b"data")
    with pytest.raises(DeployError, match="write_calibration_cache"):
        feed.raise_kept()


def _installed_trt_has_legacy_int8() -> bool:
    import tensorrt as trt

    return has_legacy_precision_flags(trt.__version__)


@pytest.mark.tensorrt
@needs_trt
def test_legacy_calibration_serves_every_image_then_replays_the_cache(tmp_path):
    """FP32 file + --int8 --calib-dir: every image is served once in batches of what TensorRT reads, the
    cache is written, and a second build replays it without images."""
    from dataclasses import replace

    if not _installed_trt_has_legacy_int8():
        pytest.skip("TensorRT 11+ has no implicit INT8 calibration (test_legacy_int8.py checks the refusal)")

    from calibration.legacy import calibration_from_images
    from quantize_helpers import shapes_files

    files = shapes_files(tmp_path)
    s = BuildSettings(onnx=files["fp32"], engine=tmp_path / "legacy.engine", int8=True,
                      calib_cache=tmp_path / "shapes.calib.cache", calib_dir=files["calib"], calib_images=16)
    inp = onnx_input(s.onnx)
    shape = calibration_shape(s, inp.dims, profile_shapes(s, inp.name, inp.dims, inp.meta))
    with calibration_from_images(s.calib_cache, s.calib_dir, inp.meta, str(s.onnx), shape, inp.name,
                                 s.calib_images, "entropy") as calibration:
        from export.engine_build import engine_from_onnx
        engine_from_onnx(s, calibration)
        assert calibration.feed.feeder.served == 16 // shape[0] and calibration.feed.kept is None
    assert s.calib_cache.read_bytes().startswith(b"TRT-")
    replay = replace(s, calib_dir=None, engine=tmp_path / "replay.engine")
    with calibration_from_images(replay.calib_cache, None, inp.meta, str(s.onnx), shape, inp.name, 0,
                                 "entropy") as calibration:
        assert engine_from_onnx(replay, calibration).is_file() and calibration.feed.feeder.served == 0
