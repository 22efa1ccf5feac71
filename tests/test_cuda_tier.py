"""The `cuda` tier: what runs on any machine with an NVIDIA driver, a GPU and cuda-python, no TensorRT
(`pytest -m cuda`). The buffers, streams, events and CUDA graphs the TensorRT backend is built from, each
checked by moving known bytes through the GPU; and the PyTorch backend on `cuda` against `cpu`.
Skipped, with the reason, where there is no GPU."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from runtime.errors import DeployError
from runtime.gpu import cuda_device_count

pytestmark = pytest.mark.cuda


def _cuda():
    if not cuda_device_count():
        pytest.skip("needs an NVIDIA driver and GPU (libcuda reports none here)")
    try:
        from runtime import cudart
    except DeployError as e:
        pytest.skip(str(e))
    cudart.set_device(0)
    return cudart


def _round_trip(cudart, data: np.ndarray, stream: int) -> np.ndarray:
    """data -> pinned -> device -> (host zeroed) -> pinned: what comes back."""
    from runtime.cuda_memory import PinnedBuffer

    buf = PinnedBuffer(data.nbytes)
    try:
        buf.host_array(data.shape, data.dtype)[...] = data
        buf.to_device(data.nbytes, stream)
        cudart.stream_synchronize(stream)
        buf.host_array(data.shape, data.dtype)[...] = 0
        buf.to_host(data.nbytes, stream)
        cudart.stream_synchronize(stream)
        return buf.host_array(data.shape, data.dtype).copy()
    finally:
        buf.free()


def test_pinned_and_device_buffers_round_trip_on_the_default_stream():
    cudart = _cuda()
    data = np.random.default_rng(0).standard_normal((2, 3, 17, 19)).astype(np.float32)
    np.testing.assert_array_equal(_round_trip(cudart, data, 0), data)


def test_async_copies_on_a_stream_with_event_timing():
    cudart = _cuda()
    from runtime.cuda_memory import EventTimer, PinnedBuffer

    stream = cudart.stream_create()
    timer = EventTimer()
    buf = PinnedBuffer(1 << 22)
    try:
        data = np.arange(1 << 20, dtype=np.int32)
        buf.host_array(data.shape, data.dtype)[...] = data
        timer.mark(0, stream)
        buf.to_device(data.nbytes, stream)
        timer.mark(1, stream)
        timer.mark(2, stream)
        buf.host_array(data.shape, data.dtype)[...] = -1
        buf.to_host(data.nbytes, stream)
        timer.mark(3, stream)
        cudart.stream_synchronize(stream)
        np.testing.assert_array_equal(buf.host_array(data.shape, data.dtype), data)
        ms = timer.elapsed()
        assert set(ms) == {"h2d", "compute", "d2h"} and all(v >= 0 for v in ms.values()) and ms["h2d"] > 0
    finally:
        buf.free()
        timer.destroy()
        cudart.stream_destroy(stream)


def test_cuda_graph_capture_and_replay_of_a_copy():
    cudart = _cuda()
    from runtime.cuda_memory import PinnedBuffer

    stream = cudart.stream_create()
    buf = PinnedBuffer(4096)
    try:
        cudart.begin_capture(stream)
        buf.to_host(4096, stream)                         # recorded, not run: device -> host
        graph_exec = cudart.end_capture(stream)
        host = buf.host_array((1024,), np.int32)
        for value in (3, 7):                             # each replay copies what the device holds then
            host[...] = value
            buf.to_device(4096, stream)
            cudart.stream_synchronize(stream)
            host[...] = -1
            cudart.graph_launch(graph_exec, stream)
            cudart.stream_synchronize(stream)
            assert (host == value).all()
        cudart.graph_exec_destroy(graph_exec)
    finally:
        buf.free()
        cudart.stream_destroy(stream)


def test_a_failed_capture_is_ended_and_cleared_and_the_stream_works_after():
    """What the TensorRT backend does when an engine cannot be captured (trtexec's endCaptureOnError)."""
    cudart = _cuda()
    stream = cudart.stream_create()
    try:
        cudart.begin_capture(stream)
        with pytest.raises(DeployError, match="cudaStreamSynchronize"):
            cudart.stream_synchronize(stream)             # not allowed while capturing: invalidates it
        reason = cudart.abandon_capture(stream)
        assert "cudaError" in reason and not cudart.is_capturing(stream)
        cudart.clear_error()
        data = np.arange(256, dtype=np.float32)
        np.testing.assert_array_equal(_round_trip(cudart, data, stream), data)
    finally:
        cudart.stream_destroy(stream)


def test_two_threads_each_with_their_own_stream_and_current_device():
    cudart = _cuda()
    results: dict[int, bool] = {}
    devices: dict[int, int] = {}

    def worker(seed: int) -> None:
        devices[seed] = cudart.current_device()           # per host thread: a new thread starts on device 0
        cudart.set_device(0)
        stream = cudart.stream_create()
        try:
            data = np.random.default_rng(seed).standard_normal(4096).astype(np.float32)
            results[seed] = bool(np.array_equal(_round_trip(cudart, data, stream), data))
        finally:
            cudart.stream_destroy(stream)

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {1: True, 2: True} and devices == {1: 0, 2: 0}


def test_the_current_device_belongs_to_the_thread():
    cudart = _cuda()
    if cudart.device_count() < 2:
        pytest.skip("needs two GPUs to see the per-thread current device")
    cudart.set_device(1)
    seen = []
    thread = threading.Thread(target=lambda: seen.append(cudart.current_device()))
    thread.start()
    thread.join()
    cudart.set_device(0)
    assert seen == [0]


def test_torch_backend_on_cuda_matches_cpu():
    """The same detections on cuda as on cpu. cuDNN convolutions use TF32 by default (PyTorch's
    allow_tf32 for cudnn), so scores move by ~1e-4: a detection scored right at the threshold may be kept on
    one device and not the other (seen on an H100: 0.300019 on cpu, absent on cuda). Such borderline
    detections are allowed; every other one must be matched with the same class, box and score."""
    _cuda()
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip(f"this PyTorch ({torch.__version__}) has no CUDA")
    from runtime import Detector
    from runtime.agreement import match_pairs

    image = np.random.default_rng(0).integers(0, 255, (192, 256, 3), dtype=np.uint8)
    with Detector("shapes_d0", backend="torch", device="cpu") as cpu, \
            Detector("shapes_d0", backend="torch", device="cuda") as gpu:
        a, b = cpu.detect(image), gpu.detect(image)
        threshold = cpu.score_threshold
    pairs = match_pairs(a, b, iou_threshold=0.95)
    assert len(pairs) >= 10                                    # something to compare
    i, j = (np.array(k) for k in zip(*[(p[0], p[1]) for p in pairs]))
    np.testing.assert_allclose(b.boxes[j], a.boxes[i], atol=0.5)
    np.testing.assert_allclose(b.scores[j], a.scores[i], atol=2e-3)
    for dets, matched in ((a, set(i.tolist())), (b, set(j.tolist()))):
        unmatched = [float(dets.scores[k]) for k in range(len(dets)) if k not in matched]
        assert all(s < threshold + 2e-3 for s in unmatched), f"unmatched detections above the threshold: {unmatched}"
