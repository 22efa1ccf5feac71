"""`infer` on video (issue 25): a clip made here from synthetic scenes (shapes panning across, new scene every 3 s)
through `infer` gives an annotated video of the source's size, frame count and rate plus one JSON line per frame
whose detections equal the Detector's on the same decoded frames; --classes, --max-frames, --no-video, --batch;
one-line errors for bad files, cameras, URLs and a missing PyAV; Ctrl-C on a file leaves nothing, on a live
source it keeps what was written. The 30-second acceptance clip, the live stream and --server run in the
integration tier."""
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from fractions import Fraction
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest

from effdet.synthetic import SynthSpec, render
from effdet_deploy.cli import main
from effdet_deploy.class_filter import keep_classes
from effdet_deploy.video_sink import frame_record
from test_interrupt import ROOT, interrupt_after

pytestmark = pytest.mark.skipif(find_spec("av") is None, reason="PyAV (the [video] extra) is not installed")
FPS = 10


def write_clip(path: Path, size: int, seconds: float, container: str = "mp4") -> Path:
    """H.264 clip: synthetic scenes (one per 3 s) panning 2 px per frame; `container` mp4 or mpegts."""
    import av

    spec = SynthSpec(height=size, width=size, max_size=size * 0.45)
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        scene = None
        for t in range(int(seconds * FPS)):
            if t % (3 * FPS) == 0:
                scene = render(11, t // (3 * FPS), spec).image
            frame = av.VideoFrame.from_ndarray(np.roll(scene, 2 * (t % (3 * FPS)), axis=1), format="rgb24")
            frame.pts, frame.time_base = t, Fraction(1, FPS)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def decoded(path: Path) -> tuple[list[np.ndarray], object]:
    """(RGB frames, stream facts) of a video, decoded as infer decodes it."""
    import av

    with av.open(str(path)) as c:
        s = c.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(s)]
        return frames, (s.average_rate, s.width, s.height, s.codec_context.name)


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def expected_records(model: Path, frames: list[np.ndarray], batch: int, keep: tuple[int, ...] | None = None) -> list:
    """The JSON lines the Detector's results on these frames make, in batches of `batch` (times: frame / FPS)."""
    from runtime.detector import Detector

    with Detector(model) as det:
        found = [d for i in range(0, len(frames), batch) for d in det.detect(frames[i:i + batch])]
        names = det.info.class_names
    return [frame_record(i, i / FPS, keep_classes(d, keep) if keep else d, names) for i, d in enumerate(found)]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """shapes_d0 at 128, ONNX NMS, batch 1..8 (batches of 8 really run as one)."""
    from export.onnx_export import export_onnx
    from export.settings import ExportSettings

    folder = tmp_path_factory.mktemp("video_model")
    return export_onnx(ExportSettings(model="shapes_d0", output=folder / "d0.onnx", image_size=(128, 128), nms="onnx",
                                      dynamic_batch=(1, 4, 8)))


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_clip(tmp_path_factory.mktemp("video") / "clip.mp4", 128, 3.0)


def test_video_file_gives_annotated_video_and_json_lines_equal_to_the_frames(model, clip, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["infer", "--model", str(model), "--input", str(clip), "--output", str(out)]) == 0
    assert "30 frames" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["clip.jsonl", "clip.mp4"]          # no temporary file left
    frames, _ = decoded(clip)
    records = lines(out / "clip.jsonl")
    assert len(frames) == 30 and [r["frame"] for r in records] == list(range(30))
    assert [r["time"] for r in records] == pytest.approx([i / FPS for i in range(30)])
    assert records == expected_records(model, frames, 8)         # default batch 8: the same batches, exact
    assert sum(len(r["detections"]) for r in records) >= 30      # something to compare
    drawn, (rate, width, height, codec) = decoded(out / "clip.mp4")
    assert (len(drawn), rate, width, height, codec) == (30, FPS, 128, 128, "h264")
    from runtime.detector import Detector
    from runtime.draw import draw_detections

    with Detector(model) as det:
        i = next(i for i, r in enumerate(records) if r["detections"])
        boxes = np.asarray(draw_detections(frames[i], det.detect(frames[i]), det.info.class_names), np.float32)
    error = np.abs(drawn[i].astype(np.float32) - boxes).mean()
    assert error < 0.5 * np.abs(drawn[i].astype(np.float32) - frames[i]).mean()   # the boxes are in the video


def test_classes_max_frames_batch_and_no_video(model, clip, tmp_path):
    out = tmp_path / "out"
    assert main(["infer", "--model", str(model), "--input", str(clip), "--output", str(out), "--classes",
                 "circle, 2", "--max-frames", "12", "--batch", "4", "--no-video", "--threads", "1"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["clip.jsonl"]
    records = lines(out / "clip.jsonl")
    frames, _ = decoded(clip)
    assert records == expected_records(model, frames[:12], 4, keep=(0, 2))
    assert {d["name"] for r in records for d in r["detections"]} == {"circle", "triangle"}  # both, and only them


def _one_error(capsys, argv: list[str]) -> str:
    code = main(argv)
    err = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert code == 2 and len(err) == 1, err
    return err[0]


def test_bad_sources_are_one_line_and_write_nothing(model, clip, tmp_path, capsys):
    import av

    (tmp_path / "garbage.mp4").write_bytes(b"not a video" * 100)
    with av.open(str(tmp_path / "silence.mp4"), "w", format="mp4") as c:   # audio only
        s = c.add_stream("aac", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 8000, 0
        for packet in list(s.encode(frame)) + list(s.encode()):
            c.mux(packet)
    with av.open(str(tmp_path / "undecodable.mp4"), "w", format="mp4") as c:   # packets that decode to nothing
        s = c.add_stream("libx264", rate=FPS)
        s.width = s.height = 64
        for i in range(5):
            packet = av.Packet(bytes(range(200)))
            packet.stream, packet.pts, packet.dts, packet.time_base = s, i, i, Fraction(1, FPS)
            c.mux(packet)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))                     # a port nobody listens on
    port = closed.getsockname()[1]
    closed.close()
    cases = {"garbage.mp4": "garbage.mp4: not a readable video (Invalid data",
             "silence.mp4": "silence.mp4: has no video stream",
             "undecodable.mp4": "undecodable.mp4: no frame could be decoded",
             "missing.mkv": "missing.mkv: no such file",
             "/dev/video77": "camera 77 (/dev/video77): no such camera",
             f"rtsp://127.0.0.1:{port}/live": f"127.0.0.1:{port}/live: cannot open the stream (Connection refused",
             "ftp://host/clip.mp4": "ftp://host/clip.mp4: unknown URL scheme 'ftp://'"}
    for source, message in cases.items():
        target = source if ":" in source or source.startswith("/") else str(tmp_path / source)
        line = _one_error(capsys, ["infer", "--model", str(model), "--input", target, "--output", str(tmp_path / "o")])
        assert message in line, line
    assert not (tmp_path / "o").exists()
    line = _one_error(capsys, ["infer", "--model", str(model), "--input", str(clip), "--output", str(tmp_path / "o"),
                               "--classes", "circle,7"])
    assert "no class '7' (6 classes: 0 circle, 1 square, 2 triangle, 3 star, 4 hexagon, 5 cross)" in line
    image = tmp_path / "scene.png"
    from PIL import Image

    Image.fromarray(render(3, 0).image).save(image)
    line = _one_error(capsys, ["infer", "--model", str(model), "--input", str(image), "--output", str(tmp_path / "o"),
                               "--max-frames", "5"])
    assert "--max-frames: for video inputs" in line
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "clip.mp4").write_bytes(clip.read_bytes())
    line = _one_error(capsys, ["infer", "--model", str(model), "--input", str(tmp_path / "videos"), "--output",
                               str(tmp_path / "o")])                  # a folder means images; say where the video is
    assert "no images found" in line and f"give one as --input, e.g. --input {tmp_path / 'videos' / 'clip.mp4'}" in line
    assert not (tmp_path / "o").exists()


def test_pyav_missing_is_one_line_naming_the_extra(model, clip, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "av", None)                    # import av raises ImportError
    line = _one_error(capsys, ["infer", "--model", str(model), "--input", str(clip), "--output", str(tmp_path / "o")])
    assert "pip install av (our [video] extra)" in line and not (tmp_path / "o").exists()


def test_ctrl_c_on_a_file_exits_130_and_leaves_nothing(model, tmp_path):
    longer = write_clip(tmp_path / "long.mp4", 128, 10.0)          # 100 frames: still running at the signal
    (tmp_path / "cwd").mkdir()
    code, err = interrupt_after("[1/100]", ["infer", "--model", str(model), "--input", str(longer), "--output", "out",
                                            "--batch", "1"], tmp_path / "cwd")
    lines_ = [x for x in err.splitlines() if x.strip()]
    assert code == 130 and "Traceback" not in err and lines_[-1] == "effdet-deploy infer: interrupted"
    assert list((tmp_path / "cwd").rglob("*")) == []                # no video, no JSON lines, no temporary file


# ---------------------------------------------------------------- integration tier


@pytest.fixture(scope="module")
def model_256(tmp_path_factory):
    from export.onnx_export import export_onnx
    from export.settings import ExportSettings

    folder = tmp_path_factory.mktemp("video_model_256")
    return export_onnx(ExportSettings(model="shapes_d0", output=folder / "d0.onnx", image_size=(256, 256), nms="onnx",
                                      dynamic_batch=(1, 8, 16)))


def _cli(*args: object, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "effdet_deploy", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.integration
def test_thirty_second_clip_equals_its_frames_run_as_images(model_256, tmp_path):
    """Acceptance (issue 25): 300 frames at 256 px in batches of 8 through the video path; the same decoded frames
    saved as PNGs through the images path, one at a time: the same detections, frame by frame."""
    from PIL import Image

    clip = write_clip(tmp_path / "clip30.mp4", 256, 30.0)
    video = _cli("infer", "--model", model_256, "--input", clip, "--output", tmp_path / "video")
    assert video.returncode == 0, video.stderr
    frames, _ = decoded(clip)
    (tmp_path / "frames").mkdir()
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(tmp_path / "frames" / f"{i:04d}.png")
    images = _cli("infer", "--model", model_256, "--input", tmp_path / "frames", "--output", tmp_path / "images")
    assert images.returncode == 0, images.stderr
    drawn, facts = decoded(tmp_path / "video" / "clip30.mp4")
    assert len(drawn) == 300 and facts[:3] == (FPS, 256, 256)
    records = lines(tmp_path / "video" / "clip30.jsonl")
    assert len(records) == 300 and records[-1]["time"] == pytest.approx(29.9)
    coco = json.loads((tmp_path / "images" / "detections.json").read_text())
    per_image: dict[int, list] = {i: [] for i in range(300)}
    for r in coco:
        per_image[int(r["image_id"][:4])].append(r)
    assert sum(len(v) for v in per_image.values()) >= 300
    for record in records:
        mine, theirs = record["detections"], per_image[record["frame"]]
        assert [(d["class"] + 1, d["score"]) for d in mine] == [(r["category_id"], r["score"]) for r in theirs]
        for d, r in zip(mine, theirs):   # COCO's [x, y, w, h] rounded after subtracting: within 1e-3 of ours
            x1, y1, x2, y2 = d["box"]
            assert np.allclose([x1, y1, x2 - x1, y2 - y1], r["bbox"], atol=1.5e-3, rtol=0)


@pytest.mark.integration
def test_live_stream_ctrl_c_keeps_every_frame_so_far(model, tmp_path):
    """A live source (an MPEG-TS stream over tcp:// on loopback that never ends): the first Ctrl-C finishes the
    batch in hand and writes both outputs with every frame so far; exit 0."""
    data = write_clip(tmp_path / "live.ts", 128, 10.0, "mpegts").read_bytes()
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    done = threading.Event()

    def stream() -> None:
        conn, _ = server.accept()
        conn.sendall(data)
        done.wait(60)                               # live: the connection stays open, no end of stream
        conn.close()

    threading.Thread(target=stream, daemon=True).start()
    url = f"tcp://127.0.0.1:{server.getsockname()[1]}"
    proc = subprocess.Popen([sys.executable, "-m", "effdet_deploy", "infer", "--model", str(model), "--input", url,
                             "--output", str(tmp_path / "out"), "--batch", "2"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:
            if line.startswith("[2]"):
                proc.send_signal(signal.SIGINT)
                break
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
        done.set()
    assert proc.returncode == 0, err
    stem = f"127.0.0.1_{server.getsockname()[1]}"
    records = lines(tmp_path / "out" / f"{stem}.jsonl")
    drawn, _ = decoded(tmp_path / "out" / f"{stem}.mp4")
    assert f"stopped by Ctrl-C after {len(records)} frames" in out and 2 <= len(records) < 100
    assert [r["frame"] for r in records] == list(range(len(records))) and len(drawn) == len(records)


@pytest.mark.integration
def test_a_silent_stream_fails_within_seconds(model, tmp_path):
    """A server that accepts and never answers: one line after the open timeout, not a hang."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    started = time.monotonic()
    run = _cli("infer", "--model", model, "--input", f"tcp://127.0.0.1:{server.getsockname()[1]}", "--output",
               tmp_path / "o", timeout=60)
    server.close()
    assert run.returncode == 2 and "no answer within 5 s" in run.stderr and len(run.stderr.strip().splitlines()) == 1
    assert time.monotonic() - started < 20 and not (tmp_path / "o").exists()


@pytest.mark.integration
def test_server_video_with_classes_writes_what_a_local_run_writes(tmp_path):
    """--server (a real tritonserver on loopback) on a video with --classes: the classes are filtered client-side,
    and the JSON lines equal a local run's on the same file."""
    from serve_helpers import require_server, running_server

    require_server()
    from export.onnx_export import export_onnx
    from export.settings import ExportSettings
    from export.triton_served import ServeSettings, served_repository

    onnx = export_onnx(ExportSettings(model="shapes_d0", output=tmp_path / "shapes.onnx", nms="onnx",
                                      image_size=(128, 128), dynamic_batch=(1, 4, 8)))
    repo = served_repository(ServeSettings(model=onnx, output=tmp_path / "repo", name="shapes"))
    native = repo.root / "shapes_native"      # this server has no onnxruntime backend: the tests' python stand-in
    (native / "config.pbtxt").write_text((native / "config.pbtxt").read_text()
                                         .replace('platform: "onnxruntime_onnx"', 'backend: "python"'))
    (native / "1" / "model.py").write_text(Path(__file__).with_name("serve_native_stand_in.py").read_text())
    clip = write_clip(tmp_path / "clip.mp4", 128, 2.0)
    with running_server(repo.root, ["shapes", "shapes_native", "shapes_pre", "shapes_post", "shapes_ensemble"]) as s:
        remote = _cli("infer", "--server", s.urls()["http"], "--model-name", "shapes", "--input", clip, "--output",
                      tmp_path / "remote", "--classes", "circle,hexagon")
    local = _cli("infer", "--model", onnx, "--input", clip, "--output", tmp_path / "local", "--classes", "0,4")
    assert remote.returncode == 0 and local.returncode == 0, remote.stderr + local.stderr
    theirs, ours = lines(tmp_path / "remote" / "clip.jsonl"), lines(tmp_path / "local" / "clip.jsonl")
    assert len(theirs) == 20 and theirs == ours
    assert {d["name"] for r in ours for d in r["detections"]} <= {"circle", "hexagon"}
    assert sum(len(r["detections"]) for r in ours) >= 10
