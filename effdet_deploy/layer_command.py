"""The `--layers` part of `compare`: reference tensors (live or saved), each target's layer run, the reports,
layers.json and the plot. The CLI shell is effdet_deploy/commands/compare.py."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from effdet_deploy.layer_compare import LayerReport, accumulate, table_lines, zipped
from effdet_deploy.layer_runners import LayerRun, Outputs
from effdet_deploy.layer_tensors import LayerTensor
from runtime.atomic import write_atomic
from runtime.errors import DeployError


class LayerReference:
    """The FP32 tensors compared and, per call, an iterator over their values image by image."""

    def __init__(self, tensors: list[LayerTensor], values: Callable[[], Iterator[Outputs]], name: str) -> None:
        self.tensors, self.values, self.name = tensors, values, name

    @classmethod
    def live(cls, reference: str, images: Sequence[np.ndarray], options: dict[str, Any],
             like: Any, threads: int | None = None) -> LayerReference:
        """An FP32 ONNX file run directly; a checkpoint or shipped name exported first (layer_runners).
        threads: ONNX Runtime intra-op threads of its session."""
        from effdet_deploy.layer_runners import exported_reference, onnx_layer_run
        from effdet_deploy.layer_tensors import body_of, reference_tensors

        found: list[LayerTensor] = []

        def wanted(model: Any) -> list[str]:
            found.extend(reference_tensors(body_of(model)))
            return [t.name for t in found]

        if Path(reference).suffix == ".onnx":
            run = onnx_layer_run(Path(reference), wanted, threads)
        else:
            run = exported_reference(reference, options, like, wanted, threads)
        if run.info.precision != "fp32":
            raise DeployError(f"{reference}: --layers needs an FP32 reference, this file is {run.info.precision}")
        return cls(found, lambda: run.per_image(images), reference)

    @classmethod
    def saved(cls, saved: Any) -> LayerReference:
        tensors = [LayerTensor.from_json(t) for t in saved.manifest["layer_tensors"]]
        return cls(tensors, saved.layers, str(saved.path))


def target_run(target: str, tensors: list[LayerTensor], threads: int | None = None
               ) -> tuple[LayerRun, dict[str, str]]:
    """The target's layer run and FP32 tensor -> target tensor for what it carries (threads: ONNX files only)."""
    from effdet_deploy.layer_runners import engine_layer_run, onnx_layer_run
    from effdet_deploy.layer_tensors import names_in, target_names

    mapping: dict[str, str] = {}
    if Path(target).suffix == ".onnx":
        def wanted(model: Any) -> list[str]:
            mapping.update(target_names(tensors, model))
            return list(dict.fromkeys(mapping.values()))
        run = onnx_layer_run(Path(target), wanted, threads)
        mapping = {k: v for k, v in mapping.items() if v in set(run.names)}
    else:
        run = engine_layer_run(Path(target))
        mapping = names_in(tensors, set(run.names))
    return run, mapping


def compare_layers(reference: LayerReference, target: str, images: Sequence[np.ndarray],
                   writer: Any = None, threads: int | None = None, rtol: float | None = None,
                   reference_size: tuple[int, int] | None = None) -> LayerReport | None:
    """One target against the reference, tensor by tensor; the reference's tensors go to `writer` when given.
    rtol (--rtol): a limit on each tensor's mean relative error, beside the precision's SNR and cosine limits.
    None (with one line) for a target of another input size than `reference_size`: no tensor has the same shape."""
    from runtime.parity import tolerances
    from runtime.progress import track

    run, mapping = target_run(target, reference.tensors, threads)
    size = tuple(run.info.image_size)
    if reference_size is not None and size != tuple(reference_size):
        print(f"  {target}: --layers skipped: the reference runs at {reference_size[0]}x{reference_size[1]}, this "
              f"file at {size[0]}x{size[1]}, so no tensor has the reference's shape (export both at one size)")
        return None
    report = LayerReport(reference.name, target, run.info.precision, tolerances(run.info.precision, rtol=rtol),
                         reference.tensors, target_names=mapping)
    ref_values = reference.values()
    if writer is not None:
        ref_values = _tee(ref_values, writer, [t.name for t in reference.tensors])
    pairs = track(zipped(ref_values, run.per_image(images)), f"{Path(target).name}: layers", total=len(images),
                  unit="image")
    return accumulate(report, pairs)


def _tee(values: Iterator[Outputs], writer: Any, names: list[str]) -> Iterator[Outputs]:
    for index, outputs in enumerate(values):
        writer.layers(index, names, outputs)
        yield outputs
        del outputs


def write_layer_outputs(reports: list[LayerReport], out: Path, keys: Sequence[str] | None = None) -> list[Path]:
    """layers.json (+ layers.png) for the first target; layers_<key>.json/.png for each when there are several
    (keys: distinct per target, effdet_deploy/reporting.py file_keys; default the file stems)."""
    from effdet_deploy.layer_plot import plot_layers

    keys = list(keys) if keys is not None else [Path(r.target).stem for r in reports]
    written = []
    for i, report in enumerate(reports):
        stems = (["layers"] if i == 0 else []) + ([f"layers_{keys[i]}"] if len(reports) > 1 else [])
        for stem in stems:
            written.append(write_atomic(out / f"{stem}.json", json.dumps(report.to_json(), indent=1)))
            written.append(plot_layers(report, out / f"{stem}.png"))
    return written


def print_report(report: LayerReport, every: bool) -> None:
    print(f"layers: {Path(report.target).name} ({report.precision}) against {Path(report.reference).name}")
    for line in table_lines(report, every):
        print(line)
