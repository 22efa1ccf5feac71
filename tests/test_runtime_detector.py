"""runtime.Detector over ONNX Runtime and PyTorch: same results as the PyTorch reference, every input
contract of the file honoured, thread safety, bad input, and no torch/onnx import in the runtime."""
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from effdet import create_model
from effdet.predict import detect
from export_helpers import ASSET, export, reference_checkpoint, sample_images
from runtime import Detector
from runtime.errors import DeployError
from runtime.image_io import read_image
from runtime.nms import NMSParams
from runtime.result import Detections

SIZE = (256, 256)
THRESH = dict(score_threshold=0.55, iou_threshold=0.5, max_detections=50)
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("detector")
    ckpt = reference_checkpoint("tf_efficientdet_d0", tmp, separate_for=sample_images(SIZE))
    out = {"ckpt": ckpt}
    for key, kw in {"efficient": dict(nms="efficient"), "onnx": dict(nms="onnx"), "none": dict(nms="none"),
                    "uint8_nhwc": dict(input_dtype="uint8", input_format="nhwc"),
                    "no_preprocess": dict(preprocess=False), "dynamic": dict(dynamic_batch=(1, 2, 4))}.items():
        out[key] = export(tmp, "tf_efficientdet_d0", ckpt, image_size=SIZE, **kw, **THRESH)
    return out


@pytest.fixture(scope="module")
def images():
    base = read_image(ASSET)                                           # 640x480: letterboxed
    return [base, np.ascontiguousarray(base[40:300, 100:500]), np.ascontiguousarray(base[::-1])]


@pytest.fixture(scope="module")
def reference(files, images):
    model = create_model("tf_efficientdet_d0", checkpoint=files["ckpt"], image_size=SIZE)
    return detect(model, images, NMSParams(score_threshold=0.55, iou_threshold=0.5, max_output_boxes=50))


def unmatched(got, ref, box_tol, score_tol):
    """Reference detections with no partner (same class, boxes and scores within tolerance) in `got`;
    order-independent, since near-tied scores may swap places between backends."""
    free = list(range(len(got)))
    missing = 0
    for i in range(len(ref)):
        close = [j for j in free if got.classes[j] == ref.classes[i]
                 and np.abs(got.boxes[j] - ref.boxes[i]).max() <= box_tol
                 and abs(float(got.scores[j]) - float(ref.scores[i])) <= score_tol]
        if close:
            free.remove(close[0])
        else:
            missing += 1
    return missing


def assert_same(results, reference, box_tol=0.05, score_tol=1e-3):
    assert len(results) == len(reference)
    for got, ref in zip(results, reference):
        assert len(got) == len(ref) > 0
        assert unmatched(got, ref, box_tol, score_tol) == 0


@pytest.mark.parametrize("kind", ["efficient", "onnx", "none", "uint8_nhwc", "no_preprocess", "dynamic"])
def test_onnx_file_matches_pytorch_reference(files, images, reference, kind):
    with Detector(files[kind]) as det:
        assert det.backend.name == "onnxruntime"
        results = det.detect(images)
    # uint8 input quantizes nothing (images are uint8 anyway); all variants see identical pixels
    assert_same(results, reference)
    for r, im in zip(results, images):   # boxes in original pixels, clipped
        assert r.boxes.dtype == np.float32 and r.classes.dtype == np.int64
        assert (r.boxes[:, 0::2] <= im.shape[1]).all() and (r.boxes[:, 1::2] <= im.shape[0]).all()


def test_torch_backend_same_format(files, images, reference):
    det = Detector(files["ckpt"], model="tf_efficientdet_d0", image_size=SIZE, score_threshold=0.55)
    assert det.backend.name == "torch"
    results = det.detect(images)
    for got, ref in zip(results, reference):   # the backend keeps 100 boxes, the reference 50: same top 50
        assert len(got) >= len(ref) > 0
        top = Detections(got.boxes[: len(ref)], got.scores[: len(ref)], got.classes[: len(ref)])
        assert unmatched(top, ref, 1e-3, 1e-5) == 0


def test_single_image_and_score_threshold(files, images, reference):
    ranked = np.sort(reference[0].scores)[::-1]
    k = len(ranked) // 2
    threshold = float(ranked[k] + ranked[k + 1]) / 2        # halfway between two reference scores
    det = Detector(files["efficient"], score_threshold=threshold)
    one = det.detect(images[0])
    assert not isinstance(one, list)
    assert len(one) == k + 1 and (one.scores >= threshold).all()
    assert set(det.timings) == {"preprocess", "inference", "postprocess"}


def test_shared_detector_is_thread_safe(files, images):
    det = Detector(files["efficient"])
    serial = [det.detect(im) for im in images]
    got: dict[int, list] = {}

    def work(k):
        got[k] = [det.detect(images[(k + j) % 3]) for j in range(3)]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k, results in got.items():
        for j, r in enumerate(results):
            ref = serial[(k + j) % 3]
            assert np.array_equal(r.boxes, ref.boxes) and np.array_equal(r.classes, ref.classes)


@pytest.mark.parametrize("bad, message", [
    (np.zeros((10, 10, 3), np.float32), "uint8"),
    (np.zeros((10, 10), np.uint8), "HxWx3"),
    (np.zeros((10, 10, 4), np.uint8), "HxWx3"),
    ([], "empty list"),
    ("not an array", "numpy array"),
])
def test_bad_images_are_one_clear_error(files, bad, message):
    det = Detector(files["efficient"])
    with pytest.raises(DeployError, match=message):
        det.detect(bad if not isinstance(bad, str) else [bad])


def test_bad_files(tmp_path):
    with pytest.raises(DeployError, match="file not found"):
        Detector(tmp_path / "missing.onnx")
    with pytest.raises(DeployError, match="cannot tell the backend"):
        Detector(tmp_path / "model.xyz")
    with pytest.raises(DeployError, match="nosuch: no such file, and no model of that name ships weights"):
        Detector("nosuch")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(DeployError, match="broken.onnx"):
        Detector(broken)


def test_options_of_another_backend_are_one_error(files):
    """--arch / --image-size with an .onnx file were a TypeError from the backend's constructor."""
    with pytest.raises(DeployError, match=r"model= \(--arch\), image_size= \(--image-size\) does not apply to "
                                          "the onnxruntime backend"):
        Detector(files["efficient"], model="d0", image_size=256)
    with Detector(files["efficient"], model=None) as det:   # an option left unset is no option
        assert det.info.nms == "efficient"


BLOCKER = """
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'onnx'):
            raise ImportError('blocked: ' + name)
sys.meta_path.insert(0, Block())
from runtime import Detector
from runtime.image_io import read_image
det = Detector(sys.argv[1])
r = det.detect(read_image(sys.argv[2]))
assert len(r) > 0, 'no detections'
print('ok', len(r), sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'onnx')))
"""


def test_runtime_runs_without_torch_and_onnx(files):
    out = subprocess.run([sys.executable, "-c", BLOCKER, str(files["efficient"]), str(ASSET)], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("[]")


def test_cli_works_without_torch_for_runtime_commands(files, tmp_path):
    """An edge device without torch: the CLI parser loads, and infer runs an ONNX file."""
    code = BLOCKER.split("from runtime")[0] + (
        "from effdet_deploy.cli import main\n"
        "assert main(['infer', '--model', sys.argv[1], '--input', sys.argv[2], '--output', sys.argv[3]]) == 0\n"
        "print('torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code, str(files["efficient"]), str(ASSET), str(tmp_path / "o")],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("False") and (tmp_path / "o" / "demo.jpg.png").is_file()  # <image name>.png


def test_numpy_nms_from_the_score_filter_keeps_the_same_detections():
    """Raw outputs (torch backend, --nms none files): starting the numpy NMS at the user's score threshold instead
    of the file's floor gives exactly the detections that filtering the floor's result gives - also when more
    candidates pass than the pre-NMS top-k keeps (random scores: ~50k pairs >= 0.3 against k = 4096)."""
    from runtime.letterbox import letterbox
    from runtime.thresholds import apply_filters

    image = np.random.default_rng(0).integers(0, 255, (192, 256, 3), dtype=np.uint8)
    with Detector("shapes_d0", backend="torch", device="cpu") as d:
        prepared, lb = letterbox(image, d.info.image_size, d.info.mean)
        real = d.backend.run(prepared[None])
        rng = np.random.default_rng(1)
        crowded = {"boxes": real["boxes"], "scores": rng.uniform(0, 1, real["scores"].shape).astype(np.float32)}
        for outputs, threshold, at_least in ((real, 0.3, 10), (crowded, 0.3, 100), (crowded, 0.9, 100)):
            floor = apply_filters(d.postprocess(outputs, [lb])[0], threshold, None, None)
            started = apply_filters(d.postprocess(outputs, [lb], threshold)[0], threshold, None, None)
            assert len(floor) >= at_least and (started.scores >= threshold).all()
            np.testing.assert_array_equal(started.boxes, floor.boxes)
            np.testing.assert_array_equal(started.scores, floor.scores)
            np.testing.assert_array_equal(started.classes, floor.classes)
