"""Issue 25, fast tier: output paths checked before any work, oversized images are one DeployError,
Ctrl-C held back around Python custom ops, a checkpoint for another architecture named in one line,
--threads, and picture labels that scale with the image and never overlap."""
import io
import os
import signal
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from effdet_deploy.cli import main
from runtime.draw import draw_detections, layout_labels
from runtime.errors import DeployError
from runtime.image_io import read_image
from runtime.interrupts import deferred_sigint
from runtime.result import Detections


def bomb_png(width: int = 20000, height: int = 10000) -> bytes:
    """A valid 8x8 PNG whose header claims width x height (200 MP > PIL's 178 MP decompression-bomb limit)."""
    buf = io.BytesIO()
    Image.new("L", (8, 8)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    ihdr = bytearray(data[12:29])
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29], data[29:33] = ihdr, struct.pack(">I", zlib.crc32(bytes(ihdr)))
    return bytes(data)


def one_error(capsys, argv: list[str]) -> str:
    try:
        code = main(argv)
    except SystemExit as e:                     # argparse's usage errors
        code = int(e.code or 0)
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    return err


@pytest.mark.parametrize("argv, words", [
    (["bench", "--model", "m.onnx", "--json", "afile/x.json"], "afile, which is a file"),
    (["infer", "--model", "m.onnx", "--input", "img.png", "--output", "afile/dir"], "afile, which is a file"),
    (["export", "--model", "shapes_d0", "--output", "/proc/effdet-none/d.onnx"], "cannot write in /proc"),
    (["infer", "--model", "m.onnx", "--input", "img.png", "--output", "/proc/pictures"], "cannot write in /proc"),
    (["eval", "--model", "m.onnx", "--images", ".", "--annotations", "a.json", "--output", "/proc/r.json"],
     "cannot write in /proc"),
])
def test_output_paths_refused_before_the_work(tmp_path, monkeypatch, capsys, argv, words):
    monkeypatch.chdir(tmp_path)
    Path("afile").write_text("x")
    assert words in one_error(capsys, argv)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]        # nothing made, no probe file left


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only-permission folder")
def test_read_only_folder_refused(tmp_path, capsys):
    (tmp_path / "ro").mkdir(mode=0o555)
    assert "cannot write in" in one_error(capsys, ["bench", "--model", "m.onnx", "--json", str(tmp_path / "ro/x.json")])


def test_oversized_and_corrupt_images_are_one_line(tmp_path):
    (tmp_path / "big.png").write_bytes(bomb_png())
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(DeployError, match=r"big.png: image too large to read \(Image size \(200000000 pixels\)"):
        read_image(tmp_path / "big.png")
    with pytest.raises(DeployError, match="bad.png: not a readable image"):
        read_image(tmp_path / "bad.png")


def test_sigint_deferred_to_the_end_of_the_block():
    reached = False
    before = signal.signal(signal.SIGINT, signal.default_int_handler)   # pytest may run with SIGINT ignored
    try:
        with pytest.raises(KeyboardInterrupt):
            with deferred_sigint():
                os.kill(os.getpid(), signal.SIGINT)
                for _ in range(1000):      # Python runs its handler between bytecodes: it must only take a note
                    pass
                reached = True
        assert reached and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, before)


def test_checkpoint_of_another_architecture_names_both(tmp_path, capsys):
    import torch

    from effdet import create_model
    from effdet.train import WeightEMA, save_checkpoint
    from effdet.train_settings import TrainSettings

    torch.manual_seed(0)
    d1 = create_model("tf_efficientdet_d1", num_classes=3, image_size=128)
    path = tmp_path / "d1.pth"
    save_checkpoint(path, d1, WeightEMA(d1, 0.9), 1, TrainSettings(image_size=128))
    expected = "the checkpoint is a tf_efficientdet_d1 (recorded in the file), the model asked for is tf_efficientdet_d0"
    with pytest.raises(DeployError) as info:
        create_model("d0", checkpoint=path)
    assert expected in str(info.value) and "missing key" not in str(info.value)
    out = tmp_path / "pipeline-out"
    err = one_error(capsys, ["pipeline", "--model", "d0", "--checkpoint", str(path), "--output", str(out)])
    assert expected in err and not out.exists()                          # refused before the first step: no log


def test_threads_reach_the_backends(tmp_path, capsys):
    import torch

    from runtime.detector import Detector, load_backend

    assert "--threads: must be at least 1" in one_error(capsys, ["bench", "--model", "m.onnx", "--threads", "0"])
    before = torch.get_num_threads()
    try:
        with Detector("shapes_d0", backend="torch", threads=1, image_size=128):
            assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    (tmp_path / "m.engine").write_bytes(b"x")
    with pytest.raises(DeployError, match="threads= .*does not apply to the tensorrt backend"):
        load_backend("tensorrt", tmp_path / "m.engine", None, threads=2)


def _dets(boxes, seed=0) -> Detections:
    rng = np.random.default_rng(seed)
    boxes = np.asarray(boxes, np.float32)
    return Detections(boxes, rng.uniform(0.3, 1.0, len(boxes)).astype(np.float32),
                      rng.integers(0, 6, len(boxes)).astype(np.int64))


def test_labels_scale_with_the_image():
    names = ("circle", "square", "triangle", "star", "hexagon", "cross")
    small = layout_labels((600, 800, 3), _dets([[100, 100, 300, 300]]), names)[0].rect
    big = layout_labels((3000, 4000, 3), _dets([[500, 500, 1500, 1500]]), names)[0].rect
    ratio = (big[3] - big[1]) / (small[3] - small[1])
    assert 4.0 < ratio < 6.0                                        # the image is 5x larger
    assert big[3] - big[1] >= 60                                     # readable when fitted to a screen
    picture = draw_detections(np.zeros((3000, 4000, 3), np.uint8), _dets([[500, 500, 1500, 1500]]), names)
    label_pixels = np.asarray(picture)[int(big[1]):int(big[3]), int(big[0]):int(big[2])]
    assert (label_pixels.sum(axis=2) > 0).mean() > 0.5              # drawn where the layout put it


def test_labels_never_overlap_on_a_dense_scene():
    rng = np.random.default_rng(3)
    xy = rng.uniform(0, 560, (150, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(20, 80, (150, 2))], axis=1)
    labels = layout_labels((640, 640, 3), _dets(boxes, seed=3))
    assert len(labels) >= 20
    for i, a in enumerate(labels):
        assert 0 <= a.rect[0] and 0 <= a.rect[1] and a.rect[2] <= 640 and a.rect[3] <= 640
        for b in labels[i + 1:]:
            assert not (a.rect[0] < b.rect[2] and b.rect[0] < a.rect[2] and a.rect[1] < b.rect[3] and b.rect[1] < a.rect[3])


def test_tool_images_skip_unreadable_and_oversized(tmp_path, capsys):
    from effdet_deploy.tool_images import tool_images

    for i in range(3):
        Image.fromarray(np.full((16, 16, 3), 40 * i, np.uint8)).save(tmp_path / f"{i}.png")
    (tmp_path / "0.png").write_bytes(bomb_png())
    (tmp_path / "1.png").write_bytes(b"corrupt")
    names, images = tool_images(tmp_path, 4)
    assert names == ["2.png"] and images[0].shape == (16, 16, 3)
    assert "skipped 2 unreadable image(s): 0.png, 1.png" in capsys.readouterr().out
    (tmp_path / "2.png").write_bytes(b"corrupt")
    with pytest.raises(DeployError, match="none of the 3 images could be read"):
        tool_images(tmp_path, 4)
