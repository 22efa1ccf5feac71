"""The `--nms onnx` tail alone on ONNX Runtime CPU, and the alternatives the design chose between, measured
in one run on the same inputs (D0 512: N = 49,104 anchors, C = 90 classes, score threshold 0.001):

- pre-NMS selection: two-stage (TopK k anchors by best class logit, then TopK k of their k x C pairs;
  what export/postprocess.py builds) vs one TopK over all N x C logits;
- class-aware NMS: NonMaxSuppression's class dimension (built) vs one class with per-class box offsets;
- the numpy reference (runtime/nms.py) on the same logits, plugin and onnx semantics.

Inputs: seeded normal logits (mean -6, std 1.5: ~60% of the 4.4 M pairs pass 0.001, as with an untrained
or weakly trained head) and small regressions; agreement of each variant with the reference is printed.

    .venv/bin/python benchmarks/bench_nms_tail.py [--iterations 10] [--threads 2] [--k 2000]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # the repo root: runs from a bare checkout too
from effdet.config import get_config  # noqa: E402
from export.graph import anchors_center_size  # noqa: E402
from export.postprocess import _best_k, _class_nms, _decode, _select_candidates, _set_outputs, _static_heads, _Tail  # noqa: E402
from runtime.anchors import generate_anchors  # noqa: E402
from runtime.nms import NMSParams, efficient_nms  # noqa: E402

from timing import interleaved_ms  # noqa: E402

THRESH, IOU, K_OUT = 0.001, 0.5, 100


def _one_topk(t: _Tail, cls_logits: str, num_classes: int, k: int) -> tuple[str, str, str]:
    """Alternative selection: one TopK over all N x C logits (the dense [B, N*C] view of cls_logits)."""
    flat = t.op("Reshape", [cls_logits, t.const("flat", np.int64([0, -1]))], "all_flat")
    t.op("TopK", [flat, t.const("k", np.int64([k]))], ["logits", "pair"], axis=1)
    t.const("last", np.int64([-1]))
    c = t.const("num_classes", np.int64(num_classes))
    return "nms_logits", t.op("Div", ["nms_pair", c], "anchor"), t.op("Mod", ["nms_pair", c], "cls")


def _offset_nms(t: _Tail, boxes: str, logits: str, cls: str, num_classes: int, k: int, score_threshold: float,
                iou_threshold: float, k_out: int) -> str:
    """Alternative class-aware NMS: one class, boxes shifted by class * (extent + 1) so classes never
    overlap. Float rounding of the shifted corners can flip borderline IoU decisions."""
    from runtime.nms import logit_threshold

    valid = t.op("GreaterOrEqual", [logits, t.const("logit_threshold", logit_threshold(score_threshold))], "valid")
    minus1 = t.const("minus1", np.float32(-1.0))
    rank = t.const("rank", np.arange(k, 0, -1, dtype=np.float32).reshape(1, k))
    nms_in = t.op("Where", [valid, rank, minus1], "nms_in")
    lo = t.op("ReduceMin", [boxes], "lo", keepdims=0)
    extent = t.op("Add", [t.op("Sub", [t.op("ReduceMax", [boxes], "hi", keepdims=0), lo], "span"),
                          t.const("one_f", np.float32(1.0))], "extent")
    shift = t.op("Mul", [t.op("Cast", [cls], "cls_f", to=TensorProto.FLOAT), extent], "shift")
    shifted = t.op("Add", [boxes, t.op("Unsqueeze", [shift, "nms_last"], "shift3")], "shifted")
    one = t.const("axis1", np.int64([1]))
    sel = t.op("NonMaxSuppression", [shifted, t.op("Unsqueeze", [nms_in, one], "nms_in_b1k"),
                                     t.const("k_out", np.int64([k_out])), t.const("iou", np.float32([iou_threshold])),
                                     t.const("score_floor", np.float32([-0.5]))], "sel")
    bj = t.op("Concat", [t.op("Gather", [sel, t.const("i0", np.int64([0]))], "sel_b", axis=1),
                         t.op("Gather", [sel, t.const("i2", np.int64([2]))], "sel_j", axis=1)], "sel_bj", axis=1)
    kept = t.op("GatherND", [nms_in, bj], "kept_rank")
    fill = t.op("ConstantOfShape", [t.op("Shape", [nms_in], "shape_bk")], "fill",
                value=onnx.numpy_helper.from_array(np.float32([-1.0])))
    return t.op("ScatterND", [fill, bj, kept], "final")


def tail_model(anchors_cs: np.ndarray, num_classes: int, k: int, select, class_nms) -> bytes:  # type: ignore[no-untyped-def]
    """A model with only the tail: inputs cls_logits [B,N,C] and box_regression [B,N,4]."""
    n = len(anchors_cs)
    graph = helper.make_graph([], "tail", [
        helper.make_tensor_value_info("cls_logits", TensorProto.FLOAT, ["batch", n, num_classes]),
        helper.make_tensor_value_info("box_regression", TensorProto.FLOAT, ["batch", n, 4])], [])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    t = _Tail(model.graph, 17)
    heads = _static_heads(t, n, num_classes)
    logits, anchor, cls = select(t, heads[0], num_classes, k)
    boxes = _decode(t, heads[1], anchor, anchors_cs)
    final = class_nms(t, boxes, logits, cls, num_classes, k, THRESH, IOU, K_OUT)
    _best_k(t, final, logits, boxes, cls)
    _set_outputs(model.graph, "batch", K_OUT)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def agreement(out: list[np.ndarray], ref: tuple[np.ndarray, ...]) -> str:
    """Same count, classes and boxes (1e-3 px) as the reference, per image."""
    same = [int(out[0][b, 0]) == int(ref[0][b, 0]) and np.array_equal(out[3][b], ref[3][b])
            and np.allclose(out[1][b], ref[1][b], atol=1e-3) for b in range(len(out[0]))]
    return f"{sum(same)}/{len(same)} images identical to the onnx-semantics reference"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--k", type=int, default=2000)
    ap.add_argument("--images", type=int, default=2, help="different random inputs checked for agreement")
    args = ap.parse_args()
    c = get_config("d0")
    anchors = generate_anchors((512, 512), c.min_level, c.max_level, c.num_scales, c.aspect_ratios, c.anchor_scale)
    acs, n, classes = anchors_center_size(anchors), len(anchors), 90
    rng = np.random.default_rng(0)
    logits = rng.normal(-6.0, 1.5, (args.images, n, classes)).astype(np.float32)
    reg = (rng.normal(0, 0.3, (args.images, n, 4))).astype(np.float32)
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    print(f"D0 512 tail only: N={n}, C={classes}, threshold {THRESH}, k={args.k}, batch 1, ORT {ort.__version__} CPU, "
          f"{args.threads} threads, median of {args.iterations} interleaved rounds; "
          f"{int((logits[0] >= np.log(THRESH / (1 - THRESH))).sum())} pairs pass the threshold")
    ref_params = NMSParams(score_threshold=THRESH, iou_threshold=IOU, max_output_boxes=K_OUT, box_coding=1,
                           top_k=args.k, semantics="onnx")
    ref = efficient_nms(reg, logits, acs[None], ref_params)
    variants = {"two-stage TopK + NMS class dim (built)": (_select_candidates, _class_nms),
                "one TopK over N*C + NMS class dim": (_one_topk, _class_nms),
                "two-stage TopK + NMS class offsets": (_select_candidates, _offset_nms)}
    calls, notes = {}, {}
    for name, (select, class_nms) in variants.items():
        session = ort.InferenceSession(tail_model(acs, classes, args.k, select, class_nms), options,
                                       providers=["CPUExecutionProvider"])
        out = [np.concatenate(o) for o in zip(*(session.run(None, {"cls_logits": logits[i:i + 1],
                                                                   "box_regression": reg[i:i + 1]})
                                                for i in range(args.images)))]
        notes[name] = agreement(out, ref)
        calls[name] = lambda s=session: s.run(None, {"cls_logits": logits[:1], "box_regression": reg[:1]})
    for sem, k in (("onnx", args.k), ("plugin", 4096)):
        p = NMSParams(**{**ref_params.__dict__, "semantics": sem, "top_k": k})
        calls[f"numpy reference, {sem} semantics, k={k}"] = lambda p=p: efficient_nms(reg[:1], logits[:1], acs[None], p)
    for name, ms in interleaved_ms(calls, args.iterations).items():
        print(f"  {name:42s} {ms:7.2f} ms   {notes.get(name, '')}")


if __name__ == "__main__":
    main()
