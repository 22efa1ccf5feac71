"""The network's raw outputs - decoded boxes [N,4] and sigmoid scores [N,C] for every anchor, before the
score threshold and NMS - for any model file, so that two files can be compared even where neither
detects anything (as Polygraphy compares outputs, not verdicts).

ONNX files: an in-memory twin that ends at the tensors the post-processing tail reads (`box_regression`/
`cls_logits` for the plugin, `boxes`/`scores` otherwise); checkpoints: the PyTorch backend's own raw
outputs. Engines carry their tail compiled in, so they have no raw level (None with the reason).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from runtime.boxes import decode_boxes
from runtime.errors import DeployError
from runtime.letterbox import check_image, letterbox
from runtime.model_info import ModelInfo
from runtime.nms import sigmoid
from runtime.preprocess import prepare_batch

# what the post-processing tail reads: raw regressions + logits (plugin, and --nms onnx files from the two-stage
# tail on) or decoded boxes + sigmoid scores (--nms none, and older --nms onnx files)
TAIL_INPUTS = (("box_regression", "cls_logits"), ("boxes", "scores"))
# center-size anchors of the tail's decoder: one [1,N,4] tensor (plugin) or centers and sizes [N,2] (ONNX tail)
PLUGIN_ANCHORS, ANCHOR_CENTER, ANCHOR_SIZE = "nms_anchors", "nms_anchor_center", "nms_anchor_size"


@dataclass
class RawRunner:
    """Runs letterboxed images through a file and yields (boxes [N,4] xyxy input px, scores [N,C]) per image."""

    info: ModelInfo
    run_batch: Any                      # batch -> (boxes [B,N,4], scores [B,N,C])

    def outputs(self, images: Sequence[np.ndarray]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        lo, hi = self.info.batch
        for start in range(0, len(images), hi):
            chunk = [letterbox(check_image(im), self.info.image_size, self.info.mean)[0]
                     for im in images[start:start + hi]]
            boxes, scores = self.run_batch(prepare_batch(chunk, self.info, lo))
            for i in range(len(chunk)):
                yield boxes[i], scores[i]


def raw_runner(path: str, options: dict[str, Any] | None = None) -> tuple[RawRunner | None, str]:
    """(runner, "") for checkpoints, shipped names and ONNX files; (None, reason) where there is no raw level.
    options: backend options (torch: model=, image_size=; both: threads=, ONNX Runtime intra-op / torch threads)."""
    from runtime.detector import backend_for, load_backend

    kind = backend_for(path)
    if kind == "torch":
        backend = load_backend("torch", path, None, **(options or {}))
        return RawRunner(backend.info, lambda batch: _boxes_scores(backend.run(batch))), ""
    if kind == "onnxruntime":
        try:
            return _onnx_runner(Path(path), (options or {}).get("threads")), ""
        except DeployError as e:          # e.g. no onnx package on an edge install: the detection level still runs
            return None, f"raw outputs not compared: {e}"
    return None, f"{Path(path).name}: a TensorRT engine has its post-processing compiled in (compare its ONNX file)"


def _boxes_scores(outputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    return outputs["boxes"], outputs["scores"]


def _onnx_runner(path: Path, threads: int | None = None) -> RawRunner:
    from runtime.onnx_session import create_session

    twin, info, anchors = raw_twin(path)
    session = create_session(twin, threads=threads, source_name=str(path))
    name = session.get_inputs()[0].name
    wanted = [o.name for o in session.get_outputs()]

    def run(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        a, b = session.run(wanted, {name: batch})
        if anchors is None:
            return a.astype(np.float32), b.astype(np.float32)
        # plugin coding (tx, ty, tw, th) against center-size anchors -> effdet's (ty, tx, th, tw) on xyxy anchors
        return decode_boxes(a[..., [1, 0, 3, 2]], anchors), sigmoid(b)

    return RawRunner(info, run)


def raw_twin(path: Path) -> tuple[bytes, ModelInfo, np.ndarray | None]:
    """The file cut before its post-processing tail: (serialized twin, its ModelInfo, xyxy anchors for the plugin)."""
    from runtime.lazy import lazy_import

    lazy_import("onnx", "onnx")
    from onnx import TensorProto, helper, numpy_helper

    from export.onnx_io import metadata_of, read_onnx

    proto = read_onnx(path)
    info = ModelInfo.from_metadata(metadata_of(proto), str(path))
    produced = {o for n in proto.graph.node for o in n.output}
    wanted = next((pair for pair in TAIL_INPUTS if all(w in produced for w in pair)), None)
    if wanted is None:
        raise DeployError(f"{path}: no box_regression/cls_logits or boxes/scores tensors (not our export?)")
    anchors = None
    if wanted == TAIL_INPUTS[0]:
        cs = _tail_anchors({t.name: t for t in proto.graph.initializer}, path)
        anchors = np.concatenate([cs[:, :2] - cs[:, 2:] / 2, cs[:, :2] + cs[:, 2:] / 2], 1).astype(np.float32)
    all_nodes = list(proto.graph.node)
    keep = _needed_nodes(all_nodes, set(wanted))
    nodes = [n for i, n in enumerate(all_nodes) if i in keep]
    used = {x for n in nodes for x in n.input}
    types = {v.name: v.type.tensor_type.elem_type for v in proto.graph.value_info}
    graph = helper.make_graph(nodes, proto.graph.name, list(proto.graph.input),
                              [helper.make_tensor_value_info(w, types.get(w, TensorProto.FLOAT), None) for w in wanted],
                              [t for t in proto.graph.initializer if t.name in used])
    domains = {n.domain for n in nodes} | {""}
    twin = helper.make_model(graph, opset_imports=[o for o in proto.opset_import if o.domain in domains],
                             ir_version=proto.ir_version)
    twin.metadata_props.extend(proto.metadata_props)   # create_session reads qdq_form (runtime/qdq_twin.py) from it
    return twin.SerializeToString(), info, anchors


def _tail_anchors(initializers: dict[str, Any], path: Path) -> np.ndarray:
    """[N,4] center-size anchors the tail decodes box_regression against."""
    from onnx import numpy_helper

    if PLUGIN_ANCHORS in initializers:
        return numpy_helper.to_array(initializers[PLUGIN_ANCHORS]).reshape(-1, 4)
    if ANCHOR_CENTER in initializers and ANCHOR_SIZE in initializers:
        return np.concatenate([numpy_helper.to_array(initializers[n]).reshape(-1, 2)
                               for n in (ANCHOR_CENTER, ANCHOR_SIZE)], 1)
    raise DeployError(f"{path}: the post-processing has no anchors ({PLUGIN_ANCHORS} or {ANCHOR_CENTER})")


def _needed_nodes(nodes: list[Any], outputs: set[str]) -> set[int]:
    """Indices of the nodes the given tensors depend on (walking back from them)."""
    producer = {o: i for i, n in enumerate(nodes) for o in n.output}
    needed: set[int] = set()
    todo = list(outputs)
    while todo:
        i = producer.get(todo.pop())
        if i is not None and i not in needed:
            needed.add(i)
            todo.extend(nodes[i].input)
    return needed
