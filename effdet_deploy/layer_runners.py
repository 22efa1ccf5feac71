"""Runs that expose every intermediate tensor, one image at a time: name -> array dicts per image.

ONNX files (ONNX Runtime): the network body of an in-memory copy with the wanted tensors added as graph
outputs (calibration/ranges.py session_with_outputs; an FP16 Q/DQ body runs through runtime/qdq_twin.py there).
TensorRT engines: the tensors the engine was built to output (export/layer_marks.py marks them at build time,
as Polygraphy's `--onnx-outputs mark all`); an engine built without marks has only its final outputs.
Checkpoints and shipped model names are exported to FP32 ONNX first (the exporter keeps the PyTorch module
names, so every tensor of the export maps; no other PyTorch naming is matched).
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from runtime.errors import DeployError
from runtime.letterbox import check_image, letterbox
from runtime.model_info import ModelInfo
from runtime.preprocess import prepare_batch

Outputs = dict[str, np.ndarray]


@dataclass
class LayerRun:
    """A model that returns the tensors `names` (its own names) for a prepared batch of one image."""

    info: ModelInfo
    names: list[str]
    run: Callable[[np.ndarray], Outputs]
    keep: list[Any] = field(default_factory=list)     # objects that must outlive the run (temp folders)

    def per_image(self, images: Sequence[np.ndarray]) -> Iterator[Outputs]:
        """name -> [1, ...] array for each image in turn (only one image's tensors alive at a time)."""
        for image in images:
            boxed = letterbox(check_image(image), self.info.image_size, self.info.mean)[0]
            out = self.run(prepare_batch([boxed], self.info, self.info.batch[0]))
            if self.info.batch[0] != 1:
                out = {k: v[:1] for k, v in out.items()}     # padding images dropped
            yield out
            del out       # not held while the next image runs (D0 at 512: ~0.6 GB of tensors an image)


def onnx_layer_run(path: Path, wanted: Callable[[Any], list[str]], threads: int | None = None) -> LayerRun:
    """An ONNX file's body with the tensors `wanted(full_model)` returns exposed (threads: ONNX Runtime intra-op)."""
    import onnx

    return model_layer_run(onnx.load(str(path)), wanted, str(path), threads)


def model_layer_run(model: Any, wanted: Callable[[Any], list[str]], source: str, threads: int | None = None
                    ) -> LayerRun:
    """The same for an in-memory ModelProto (e.g. an INT8 file with some groups taken out of INT8)."""
    from effdet_deploy.layer_tensors import body_of
    from export.onnx_io import metadata_of

    info = ModelInfo.from_metadata(metadata_of(model), source)
    names = wanted(model)
    body = body_of(model)
    available = {o for n in body.graph.node for o in n.output} | {i.name for i in body.graph.input}
    names = [n for n in names if n in available]
    session = _session_with_outputs(body, names, source, threads)
    feed = session.get_inputs()[0].name

    def run(batch: np.ndarray) -> Outputs:
        return dict(zip(names, session.run(names, {feed: batch})))

    return LayerRun(info, names, run)


def _session_with_outputs(body: Any, names: list[str], source: str, threads: int | None = None) -> Any:
    """ONNX Runtime session of `body` whose outputs are exactly `names`, each with its inferred type
    (the body's own outputs are FP16 in an FP16 file); FP16 Q/DQ bodies as runtime/qdq_twin.py's twin."""
    import onnx

    from runtime.onnx_session import create_session
    from runtime.qdq_twin import twin_if_needed

    del body.graph.output[:]
    probe = onnx.shape_inference.infer_shapes(body)
    types = {v.name: v.type.tensor_type.elem_type for v in probe.graph.value_info}
    probe.graph.output.extend(onnx.helper.make_tensor_value_info(n, types.get(n, onnx.TensorProto.FLOAT), None)
                              for n in names)
    return create_session(twin_if_needed(probe).SerializeToString(), threads=threads,
                          source_name=f"{source} (layer outputs)", memory_arena=False)


def engine_layer_run(path: Path) -> LayerRun:
    """An engine's outputs (the marked intermediate tensors among them) for each image."""
    from runtime.detector import load_backend

    backend = load_backend("tensorrt", str(path), None)
    names = list(getattr(backend, "outputs", []))
    return LayerRun(backend.info, names, backend.run, [backend])


def exported_reference(model: str, options: dict[str, Any], like: ModelInfo,
                       wanted: Callable[[Any], list[str]], threads: int | None = None) -> LayerRun:
    """A checkpoint or shipped name exported to FP32 ONNX at the target's input size, then run as ONNX."""
    from export.onnx_export import export_onnx
    from export.settings import ExportSettings

    name = options.get("model") or (None if Path(model).suffix else model)
    if name is None:
        raise DeployError(f"{model}: give --arch for a checkpoint reference of compare --layers")
    folder = tempfile.TemporaryDirectory(prefix="effdet-layers-")
    settings = ExportSettings(model=str(name), output=Path(folder.name) / "reference.onnx", image_size=like.image_size,
                              nms="none", checkpoint=Path(model) if Path(model).suffix else None)
    path = export_onnx(settings)
    run = onnx_layer_run(path, wanted, threads)
    run.keep.append(folder)
    return run
