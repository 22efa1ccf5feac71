"""gpu-check's layer-wise rows (`--layers`): the FP16 and INT8 engines rebuilt with the FP32 file's tensors marked as
outputs (export/layer_marks.py, as Polygraphy's `--onnx-outputs mark all`) and compared tensor by tensor with the
FP32 ONNX file on ONNX Runtime (`compare --layers`: effdet_deploy/layer_command.py). PASS: tensors compared and none
over the precision's layer tolerance; FAIL names the first divergence; INCONCLUSIVE when nothing was compared.
The marked engine runs unfused across marked tensors: its numbers locate a loss, they do not time an engine."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from tools.gpu_report import Row

if TYPE_CHECKING:
    from effdet_deploy.layer_compare import LayerReport


def marked_names(fp32_onnx: Path) -> tuple[str, ...]:
    """The FP32 file's tensors and their '<name>_pre_cast' twins (the FP16 conv outputs of FP16/INT8 files)."""
    import onnx

    from effdet_deploy.layer_tensors import body_of, reference_tensors

    names = [t.name for t in reference_tensors(body_of(onnx.load(str(fp32_onnx))))]
    return tuple(names + [f"{n}_pre_cast" for n in names])


def layerwise_row(name: str, onnx_file: Path, fp32_onnx: Path, images: Sequence[np.ndarray], out: Path) -> Row:
    """Build the marked engine, compare its tensors with the FP32 file's, write layers_<name>.json/.png."""
    from effdet_deploy.layer_command import LayerReference, compare_layers
    from export.build_plan import BuildSettings
    from export.engine_build import engine_from_onnx

    try:
        engine = engine_from_onnx(BuildSettings(onnx=onnx_file, engine=onnx_file.with_suffix(".layers.engine"),
                                                mark_outputs=marked_names(fp32_onnx)))
        reference = LayerReference.live(str(fp32_onnx), images, {}, None)
        report = compare_layers(reference, str(engine), images)
    except Exception as e:     # report it and go on with the other rows
        return Row(f"{name} layer-wise", "FAIL", [f"{type(e).__name__}: {e}"])
    _write(report, out, name)
    first = report.first_divergence()
    snrs = [s.snr_db for s in report.stats.values()]
    numbers = {"tensors compared": float(len(report.compared)), "worst SNR dB": min(snrs, default=float("nan"))}
    if not report.compared:
        return Row(f"{name} layer-wise", "INCONCLUSIVE", ["no marked tensor matched the FP32 file's"], numbers)
    if first is None:
        return Row(f"{name} layer-wise", "PASS", [], numbers)
    return Row(f"{name} layer-wise", "FAIL", [f"first divergence {first[0].node} ({first[0].group}): "
                                              + "; ".join(first[1])], {**numbers, "first divergence depth":
                                                                      float(first[0].depth)})


def _write(report: LayerReport, out: Path, name: str) -> None:
    import json

    from effdet_deploy.layer_plot import plot_layers
    from runtime.atomic import write_atomic

    write_atomic(out / f"layers_{name}.json", json.dumps(report.to_json(), indent=1))
    plot_layers(report, out / f"layers_{name}.png")
