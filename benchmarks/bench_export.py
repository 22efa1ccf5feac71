"""ONNX Runtime CPU cost of the post-processing in the exported files, measured in one run (issue 12):
D0 512x512, 90 classes (random weights, seeded: every (anchor, class) pair scores ~0.01, so all 4.4 M pass
the 0.001 threshold - the worst case for the tail), score threshold 0.001, 2 threads.

- network alone: `--nms none --no-preprocess` (decoded boxes + sigmoid scores for every anchor, no NMS);
- bare network stand-in: our unfused model (effdet's module structure and checkpoint keys) exported by
  plain `torch.onnx.export`, raw head outputs, no pre-/post-processing, none of our graph rewrites. The
  `effdet` package itself cannot share our environment (same import name), so this stands in for
  "effdet's bare network exported by torch.onnx"; it is not effdet's code;
- full `--nms onnx` file (preprocessing + network + two-stage top-k + decoding + NMS), batch 1;
- full `--nms efficient` file (the plugin run on CPU by the numpy reference op), batch 1;
- a dynamic-batch `--nms onnx` file at batch 1 and batch 8: per-image throughput ratio, beside the same
  ratio of the dynamic network alone (what ONNX Runtime's convolutions do with a batch, tail or not).

Calls are interleaved (benchmarks/timing.py: interleaved_ms) because the machine is shared.

    .venv/bin/python benchmarks/bench_export.py [--rounds 10] [--threads 2] [--block 1] [--effdet-onnx FILE]
                                                [--effdet-onnx-dynamic FILE]

`--block N`: N timed calls per turn after 3 untimed ones (timing.interleaved_ms); use it with many threads
(16 on the device), where single interleaved calls measured the same session at up to twice its time alone.

`--effdet-onnx`: the real `effdet` package's bare D0 network, made in a separate venv by
benchmarks/effdet_bare_onnx.py (its docstring has the commands); timed beside the others twice: in a session
made like ours (runtime/onnx_session.py: on ONNX Runtime 1.24 that switches QuickGeluFusion off) and in a plain
ONNX Runtime session with its default settings, as an effdet user would run it. `--effdet-onnx-dynamic`: the
same network exported with a symbolic batch (effdet_bare_onnx.py --dynamic-batch), run at batch 1 and 8 in a
session like ours: the control for the batch ratio, i.e. what ONNX Runtime does with a batch of effdet's own
network on the same threads.
"""
from __future__ import annotations

import argparse
import io
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import onnxruntime
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # the repo root: runs from a bare checkout too
from effdet import create_model  # noqa: E402
from export.onnx_export import export_onnx  # noqa: E402
from export.settings import ExportSettings  # noqa: E402
from runtime.onnx_session import cpu_disabled_optimizers, create_session  # noqa: E402

from timing import interleaved_ms  # noqa: E402

SIZE, THRESH = 512, 0.001
EFFDET = "effdet (PyPI) bare network, torch.onnx"
EFFDET_DEFAULT = "effdet bare network, ORT default session"
EFFDET_B1, EFFDET_B8 = "effdet bare network dynamic, batch 1", "effdet bare network dynamic, batch 8 (per image)"


def bare_export(model: torch.nn.Module, path: Path) -> Path:
    """The unfused model's raw heads through plain torch.onnx (the effdet-style bare network)."""
    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer chatter, as in export/onnx_export.py
        torch.onnx.export(model.eval(), (torch.zeros(1, 3, SIZE, SIZE),), buf, dynamo=False, opset_version=17,
                          input_names=["images"], output_names=["cls_logits", "box_regression"])
    path.write_bytes(buf.getvalue())
    return path


def exports(tmp: Path, ckpt: Path) -> dict[str, Path]:
    base = dict(model="d0", checkpoint=ckpt, image_size=(SIZE, SIZE), score_threshold=THRESH)
    settings = {"none": dict(nms="none", preprocess=False), "onnx": dict(nms="onnx"),
                "efficient": dict(nms="efficient"), "onnx_dynamic": dict(nms="onnx", dynamic_batch=(1, 8, 8)),
                "none_dynamic": dict(nms="none", preprocess=False, dynamic_batch=(1, 8, 8))}
    return {name: export_onnx(ExportSettings(output=tmp / f"{name}.onnx", **base, **kw)) for name, kw in settings.items()}


def effdet_calls(path: Path, threads: int, x: np.ndarray) -> dict[str, Callable[[], object]]:
    """effdet's bare file run on `x`, in a session made like ours and in one with ONNX Runtime's defaults."""
    plain = onnxruntime.SessionOptions()
    plain.intra_op_num_threads = threads
    ours = create_session(path, threads=threads)
    default = onnxruntime.InferenceSession(str(path), plain, providers=["CPUExecutionProvider"])
    return {EFFDET: lambda: ours.run(None, {"images": x}), EFFDET_DEFAULT: lambda: default.run(None, {"images": x})}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--block", type=int, default=1, help="timed calls per turn (after 3 untimed when > 1)")
    ap.add_argument("--effdet-onnx", type=Path, help="effdet's bare D0 network (benchmarks/effdet_bare_onnx.py)")
    ap.add_argument("--effdet-onnx-dynamic", type=Path,
                    help="effdet's bare D0 network with a symbolic batch (effdet_bare_onnx.py --dynamic-batch)")
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp())
    model = create_model("d0")
    torch.save(model.state_dict(), tmp / "d0.pth")
    files = exports(tmp, tmp / "d0.pth")
    files["bare"] = bare_export(model, tmp / "bare.onnx")
    sessions = {name: create_session(path, threads=args.threads) for name, path in files.items()}
    x1 = np.random.default_rng(0).uniform(0, 255, (1, 3, SIZE, SIZE)).astype(np.float32)
    x8 = np.random.default_rng(1).uniform(0, 255, (8, 3, SIZE, SIZE)).astype(np.float32)
    calls = {
        "network alone (--nms none --no-preprocess)": lambda: sessions["none"].run(None, {"images": x1}),
        "bare network stand-in (unfused, torch.onnx)": lambda: sessions["bare"].run(None, {"images": x1}),
        "full --nms onnx": lambda: sessions["onnx"].run(None, {"images": x1}),
        "full --nms efficient (numpy plugin op)": lambda: sessions["efficient"].run(None, {"images": x1}),
        "dynamic --nms onnx, batch 1": lambda: sessions["onnx_dynamic"].run(None, {"images": x1}),
        "dynamic --nms onnx, batch 8 (per image)": lambda: sessions["onnx_dynamic"].run(None, {"images": x8}),
        "dynamic network alone, batch 1": lambda: sessions["none_dynamic"].run(None, {"images": x1}),
        "dynamic network alone, batch 8 (per image)": lambda: sessions["none_dynamic"].run(None, {"images": x8}),
    }
    if args.effdet_onnx:
        calls.update(effdet_calls(args.effdet_onnx, args.threads, x1 - 128.0))   # normalized-range input
    if args.effdet_onnx_dynamic:
        dyn = create_session(args.effdet_onnx_dynamic, threads=args.threads)
        e1, e8 = x1 - 128.0, x8 - 128.0
        calls[EFFDET_B1] = lambda: dyn.run(None, {"images": e1})
        calls[EFFDET_B8] = lambda: dyn.run(None, {"images": e8})
    ms = interleaved_ms(calls, args.rounds, block=args.block)
    ms["dynamic --nms onnx, batch 8 (per image)"] /= 8
    ms["dynamic network alone, batch 8 (per image)"] /= 8
    if EFFDET_B8 in ms:
        ms[EFFDET_B8] /= 8
    base = ms["network alone (--nms none --no-preprocess)"]
    print(f"D0 {SIZE}x{SIZE}, 90 classes, threshold {THRESH}, ONNX Runtime {onnxruntime.__version__} CPU, "
          f"{args.threads} threads, torch {torch.__version__}; median of {args.rounds} interleaved rounds"
          f"{f' of {args.block} timed calls' if args.block > 1 else ''}; "
          f"our sessions switch off: {cpu_disabled_optimizers(onnxruntime.__version__) or 'nothing'}")
    for name, value in ms.items():
        print(f"  {name:46s} {value:8.1f} ms   {value / base:5.2f}x network alone")
    b1, b8 = ms["dynamic --nms onnx, batch 1"], ms["dynamic --nms onnx, batch 8 (per image)"]
    n1, n8 = ms["dynamic network alone, batch 1"], ms["dynamic network alone, batch 8 (per image)"]
    control = f", effdet's bare network {ms[EFFDET_B1] / ms[EFFDET_B8]:.2f}" if EFFDET_B8 in ms else ""
    print(f"  batch-8 / batch-1 per-image throughput: full --nms onnx {b1 / b8:.2f}, "
          f"network alone {n1 / n8:.2f}{control}")
    print(f"  full --nms onnx vs bare network stand-in: {ms['full --nms onnx'] / ms['bare network stand-in (unfused, torch.onnx)']:.2f}x")
    if EFFDET in ms:
        print(f"  full --nms onnx vs effdet's bare network, both in sessions like ours: "
              f"{ms['full --nms onnx'] / ms[EFFDET]:.2f}x")
        print(f"  full --nms onnx (our session) vs effdet's bare network (ORT defaults): "
              f"{ms['full --nms onnx'] / ms[EFFDET_DEFAULT]:.2f}x")


if __name__ == "__main__":
    main()
