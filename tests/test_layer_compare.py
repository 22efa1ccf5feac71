"""compare --layers (issue 24): a planted damage - one conv's weights scaled by a factor in 0.5-3, at a random depth of
the FP32 file - is the first divergence, at exactly that conv, in the backbone, the BiFPN and the heads; an identical
file reports none. shapes_d0 exported at 128 (ONNX NMS, so no plugin stand-in is needed), 2 generated scenes."""
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from effdet.synthetic import render
from effdet_deploy.layer_command import LayerReference, compare_layers
from effdet_deploy.layer_stats import SNR_CAP, LayerAccumulator
from effdet_deploy.layer_tensors import body_of, reference_tensors, target_names
from export.onnx_export import export_onnx
from export.settings import ExportSettings
from runtime.parity import TOLERANCES

PARTS = {"backbone": "/model/backbone/", "BiFPN": "/model/fpn/cell", "heads": "/model/(class|box)_net/"}


@pytest.fixture(scope="module")
def fp32(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("layers")
    return export_onnx(ExportSettings(model="shapes_d0", output=tmp / "fp32.onnx", image_size=(128, 128),
                                      nms="onnx", score_threshold=0.05))


@pytest.fixture(scope="module")
def images():
    return [render(31, i).image for i in range(2)]


def plant(source: Path, part: str, seed: int, out: Path) -> tuple[str, float]:
    """Scale one conv's weights of `part` (picked by `seed`) by a factor in 0.5-3 (at least 10% from 1); returns
    (conv node name, factor). Only convs with weights of their own: the heads' depthwise convs share theirs across
    levels, so a scaled shared weight first shows (correctly) at the first level that reads it."""
    import re

    model = onnx.load(str(source))
    rng = np.random.default_rng(seed)
    readers: dict[str, int] = {}
    for n in model.graph.node:
        for x in n.input:
            readers[x] = readers.get(x, 0) + 1
    convs = [n for n in model.graph.node if n.op_type == "Conv" and re.match(PARTS[part], n.name)
             and readers[n.input[1]] == 1]
    conv = convs[int(rng.integers(len(convs)))]
    factor = 1.0
    while abs(factor - 1) < 0.1:
        factor = float(rng.uniform(0.5, 3.0))
    weight = next(i for i in model.graph.initializer if i.name == conv.input[1])
    weight.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weight) * np.float32(factor), weight.name))
    onnx.save(model, str(out))
    return conv.name, factor


@pytest.mark.parametrize("part,seed", [("backbone", 1), ("BiFPN", 3), ("heads", 5)])
def test_planted_damage_is_the_first_divergence(fp32, images, tmp_path, part, seed):
    node, factor = plant(fp32, part, seed, tmp_path / "damaged.onnx")
    report = compare_layers(LayerReference.live(str(fp32), images, {}, None), str(tmp_path / "damaged.onnx"), images)
    first = report.first_divergence()
    assert first is not None, f"x{factor:.2f} at {node} not found"
    assert first[0].node == node, f"x{factor:.2f} at {node}, reported {first[0].node}"
    before = [t for t in report.compared if t.depth < first[0].depth]
    assert before and all(report.stats[t.name].snr_db == SNR_CAP for t in before)   # exact up to the damage


def test_identical_file_reports_no_divergence(fp32, images):
    report = compare_layers(LayerReference.live(str(fp32), images, {}, None), str(fp32), images)
    assert report.first_divergence() is None
    assert len(report.compared) == len(report.tensors) > 500
    assert {report.stats[t.name].max_abs for t in report.compared} == {0.0}
    data = report.to_json()
    assert data["first_divergence"] is None and len(data["tensors"]) == len(report.tensors)


def test_depth_order_is_topological_and_keeps_parts_apart(fp32):
    tensors = reference_tensors(body_of(onnx.load(str(fp32))))
    position = {t.name: t.depth for t in tensors}
    assert all(position[i] < t.depth for t in tensors for i in t.inputs if i in position)
    groups = [t.group for t in tensors]
    last_backbone = max(i for i, g in enumerate(groups) if g.startswith("backbone/"))
    first_head = min(i for i, g in enumerate(groups) if g.startswith(("class_net/", "box_net/")))
    assert all(not g.startswith("fpn/cell") for g in groups[:last_backbone])
    assert all(not g.startswith("fpn/") for g in groups[first_head:])


def test_fp16_names_map_back_through_casts(tmp_path):
    """A Cast to FP32 after an FP16 conv output '<x>_pre_cast' carries the FP32 tensor <x>; a Q/DQ pair carries it too."""
    from onnx import TensorProto, helper

    def graph(nodes):
        return helper.make_model(helper.make_graph(nodes, "g", [helper.make_tensor_value_info("in", 1, [1])],
                                                   [helper.make_tensor_value_info("y", 1, [1])]))
    ref = reference_tensors(graph([helper.make_node("Relu", ["in"], ["x"], name="a"),
                                   helper.make_node("Neg", ["x"], ["y"], name="b")]))
    target = graph([helper.make_node("Relu", ["in"], ["x_pre_cast"], name="a"),
                    helper.make_node("Cast", ["x_pre_cast"], ["x"], to=TensorProto.FLOAT),
                    helper.make_node("Neg", ["x"], ["y"], name="b")])
    assert target_names(ref, target) == {"x": "x_pre_cast", "y": "y"}


def test_statistics():
    rng = np.random.default_rng(0)
    r = rng.standard_normal(10000).astype(np.float32)
    acc = LayerAccumulator()
    for half in (r[:5000], r[5000:]):                       # accumulated over images = computed at once
        acc.add(half, half * np.float32(1.1))
    s = acc.stats()
    assert s.snr_db == pytest.approx(20.0, abs=0.01)        # error 0.1 r: 10 log10(1 / 0.01)
    assert s.mean_rel == pytest.approx(0.1, rel=1e-4) and s.cosine == pytest.approx(1.0, abs=1e-6)
    assert s.max_abs == pytest.approx(0.1 * np.abs(r).max(), rel=1e-5)
    assert TOLERANCES["fp32"]["layer_snr_db"] > 20 > TOLERANCES["int8"]["layer_snr_db"]


def test_one_image_of_tensors_alive_at_a_time():
    """Memory stays bounded (issue 24): while an image's tensors are computed, the previous image's are released -
    by the per-image runs, by zipped() and by accumulate() (D0 at 512, 16 images: peak 2.5 GB; before, 3.6 GB at 4)."""
    import weakref

    from effdet_deploy.layer_compare import LayerReport, accumulate, zipped
    from effdet_deploy.layer_runners import LayerRun
    from effdet_deploy.layer_tensors import LayerTensor
    from runtime.model_info import ModelInfo

    class Tensor(np.ndarray):            # an ndarray that weakref can follow
        pass

    made: dict[str, list[weakref.ref]] = {"ref": [], "got": []}

    def runner(side):
        def run(batch):
            earlier = made["ref"][:-1] + made["got"] if side == "got" else made["ref"] + made["got"]
            assert all(r() is None for r in earlier), "an earlier image's tensors are still held"
            out = np.ones(4, np.float32).view(Tensor)
            made[side].append(weakref.ref(out))
            return {"t": out}
        return run

    info = ModelInfo(model="m", image_size=(8, 8), mean=(0, 0, 0), std=(1, 1, 1), num_classes=1)
    ref, got = LayerRun(info, ["t"], runner("ref")), LayerRun(info, ["t"], runner("got"))
    images = [np.zeros((8, 8, 3), np.uint8)] * 3
    tensor = LayerTensor.from_json({"tensor": "t", "node": "n", "op": "Conv", "group": "g", "depth": 0, "inputs": []})
    report = LayerReport("r", "t", "fp32", TOLERANCES["fp32"], [tensor], target_names={"t": "t"})
    accumulate(report, zipped(ref.per_image(images), got.per_image(images)))
    assert report.images == 3 and len(made["ref"]) == len(made["got"]) == 3


def test_a_target_of_another_input_size_is_skipped_in_one_line(fp32, images, capsys):
    """compare --reference shapes_d0 (256) --target m128.onnx --layers was a ValueError traceback ('shapes differ')."""
    reference = LayerReference.live(str(fp32), images, {}, None)
    assert compare_layers(reference, str(fp32), images, reference_size=(256, 256)) is None
    line, = capsys.readouterr().out.strip().splitlines()
    assert "--layers skipped: the reference runs at 256x256, this file at 128x128" in line
    assert compare_layers(reference, str(fp32), images, reference_size=(128, 128)) is not None
