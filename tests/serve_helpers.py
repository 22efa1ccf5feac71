"""Helpers for the tests against a real tritonserver (the nvidia-pytriton wheel's) on loopback: where the wheel can
run (x86_64 Linux) it must be installed (make's setup does it), elsewhere the tests skip with the reason. Every
server is stopped by a finalizer, and no process of it may be left."""
from __future__ import annotations

import contextlib
import io
import json
import platform
import struct
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

WHEEL_PLATFORM = sys.platform == "linux" and platform.machine() == "x86_64"


def require_server() -> None:
    """Skip where the nvidia-pytriton wheel cannot run; fail where it could but is missing."""
    if not WHEEL_PLATFORM:
        pytest.skip(f"the nvidia-pytriton wheel's tritonserver runs on x86_64 Linux only, not {sys.platform} "
                    f"{platform.machine()}")
    from importlib.util import find_spec

    if find_spec("pytriton") is None or find_spec("tritonclient.http") is None:
        pytest.fail("nvidia-pytriton / tritonclient[http] not installed: run make's setup (x86_64 Linux installs them)")


def processes_mentioning(text: str) -> list[int]:
    """Pids whose command line contains `text` (e.g. a test's repository path)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def session_members(sid: int) -> list[int]:
    """Live (not zombie) pids in session `sid` (the server runs in its own session, its stubs with it)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def gone(text: str | int, within_s: float = 10.0) -> bool:
    """No process mentions `text` (or is in session `text`) within the time (SIGKILLed processes take a moment
    to leave /proc)."""
    deadline = time.monotonic() + within_s
    while session_members(text) if isinstance(text, int) else processes_mentioning(text):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@contextlib.contextmanager
def running_server(repo: Path, models: list[str], ports: object = None, exit_timeout_s: int = 3) -> Iterator[object]:
    """A TritonServer over `repo`, ready; stopped on exit, with no process of its session left."""
    from effdet_deploy.triton_server import Ports, TritonServer, find_server

    with tempfile.TemporaryDirectory(prefix="effdet-test-triton-") as work:
        server = TritonServer(find_server(Path(work)), repo, models, ports or Ports.pick(), Path(work) / "triton.log",
                              exit_timeout_s=exit_timeout_s)
        try:
            server.start()
            server.wait_ready(90)
            yield server
        finally:
            server.stop(grace_s=exit_timeout_s + 10)
            if server.process is not None:
                assert gone(server.pid), f"a server process outlived its test: {session_members(server.pid)}"


def tiny_detector_onnx(path: Path, size: int = 64) -> Path:
    """A hand-made 'detector' ONNX file in our contract (metadata + the four NMS outputs, batch 1..4): one box per
    image whose score is the image's mean brightness / 255. Built in a second, for tests about serving itself."""
    import onnx
    from onnx import TensorProto, helper

    def const(name: str, values: list[float], dims: list[int]) -> onnx.TensorProto:
        return helper.make_tensor(name, TensorProto.FLOAT, dims, values)

    nodes = [helper.make_node("ReduceMean", ["images"], ["mean"], axes=[1, 2, 3], keepdims=0),
             helper.make_node("Div", ["mean", "c255"], ["score"]),
             helper.make_node("Unsqueeze", ["score", "ax1"], ["detection_scores"]),
             helper.make_node("Mul", ["detection_scores", "zero"], ["zeros"]),
             helper.make_node("Add", ["zeros", "one"], ["ones"]),
             helper.make_node("Cast", ["ones"], ["num_detections"], to=TensorProto.INT32),
             helper.make_node("Cast", ["zeros"], ["detection_classes"], to=TensorProto.INT32),
             helper.make_node("Unsqueeze", ["zeros", "ax2"], ["zeros3"]),
             helper.make_node("Add", ["zeros3", "box"], ["detection_boxes"])]
    inits = [const("c255", [255.0], []), const("zero", [0.0], []), const("one", [1.0], []),
             const("box", [4.0, 8.0, size / 2, size - 4.0], [1, 1, 4]),
             helper.make_tensor("ax1", TensorProto.INT64, [1], [1]), helper.make_tensor("ax2", TensorProto.INT64, [1], [2])]
    out = [helper.make_tensor_value_info("num_detections", TensorProto.INT32, ["B", 1]),
           helper.make_tensor_value_info("detection_boxes", TensorProto.FLOAT, ["B", 1, 4]),
           helper.make_tensor_value_info("detection_scores", TensorProto.FLOAT, ["B", 1]),
           helper.make_tensor_value_info("detection_classes", TensorProto.INT32, ["B", 1])]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("images", TensorProto.FLOAT,
                                                                           ["B", 3, size, size])], out, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    meta = {"model": "tiny", "image_size": f"{size},{size}", "mean": "[0, 0, 0]", "std": "[1, 1, 1]",
            "num_classes": "2", "class_names": json.dumps(["bright", "dark"]), "nms": "onnx",
            "max_detections": "1", "batch": "dynamic:1,2,4", "score_threshold": "0.001"}
    for k, v in meta.items():
        model.metadata_props.add(key=k, value=v)
    onnx.save(model, str(path))
    return path


def png_bytes(image: np.ndarray) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(image).save(out, format="PNG")
    return out.getvalue()


def huge_png(width: int = 20000, height: int = 10000) -> bytes:
    """A valid grayscale PNG of width x height (200 MP by default) in a few hundred kB: rows of zeros, streamed
    through zlib so the pixels never exist in memory."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    z = zlib.compressobj(9)
    row = b"\0" * (width + 1)
    body = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
