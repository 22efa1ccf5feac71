"""Export structure, variants, dynamic batch, lint, metadata, bad input, and every model in the table."""
import subprocess
import sys

import numpy as np
import onnx
import pytest

from effdet.config import MODEL_TABLE
from export.lint import lint
from export_helpers import export, nchw, sample_images
from runtime.onnx_session import create_session, metadata


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    return tmp_path_factory.mktemp("export")


def test_fused_graph_structure_and_metadata(tmp):
    path = export(tmp, "d0", None, image_size=(512, 512), nms="efficient", num_classes=2, class_names=("a", "b"))
    proto = onnx.load(path)
    ops = [n.op_type for n in proto.graph.node]
    print(f"D0 512 nodes: {len(ops)} (effdet's own torch.onnx export: 707 with 30 BatchNormalization, 57 Div)")
    assert "BatchNormalization" not in ops and "Div" not in ops and "Shape" not in ops
    assert len(ops) < 650 and ops.count("EfficientNMS_TRT") == 1
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["model"] == "tf_efficientdet_d0" and meta["image_size"] == "512,512" and meta["nms"] == "efficient"
    assert meta["class_names"] == '["a", "b"]' and meta["precision"] == "fp32" and meta["num_anchors"] == "49104"
    assert meta["pre_nms_top_k"] == "4096" and meta["min_tensorrt"] == "8.6"   # the plugin's k; opset 17 parses on 8.6
    assert lint(proto) == []
    onnx.checker.check_model(proto)


def test_lint_names_the_offending_node(tmp):
    proto = onnx.load(export(tmp, "d0", None, image_size=128, nms="efficient"))
    proto.graph.node.append(onnx.helper.make_node("Unique", ["images"], ["u"], name="bad_unique"))
    plugin = next(n for n in proto.graph.node if n.op_type == "EfficientNMS_TRT")
    next(a for a in plugin.attribute if a.name == "box_coding").i = 7
    problems = lint(proto)
    assert any("bad_unique" in p and "Unique" in p for p in problems)
    assert any("efficient_nms" in p and "box_coding=7" in p for p in problems)


@pytest.mark.parametrize("nms", ["efficient", "onnx"])
def test_dynamic_batch_runs_at_1_and_3(tmp, nms):
    path = export(tmp, "d0", None, image_size=128, nms=nms, dynamic_batch=(1, 2, 4), score_threshold=0.0)
    session = create_session(path)
    images = sample_images((128, 128), 3)
    batch3 = session.run(None, {"images": nchw(images)})
    assert metadata(session)["batch"] == "dynamic:1,2,4" and batch3[0].shape == (3, 1)
    for i in range(3):
        single = session.run(None, {"images": nchw(images[i : i + 1])})
        assert batch3[0][i, 0] == single[0][0, 0] > 0
        np.testing.assert_allclose(batch3[1][i], single[1][0], atol=1e-3)


def test_input_variants_agree(tmp):
    import torch

    from effdet import create_model

    torch.manual_seed(0)
    ckpt = tmp / "d0_random.pth"
    torch.save(create_model("d0", num_classes=4).state_dict(), ckpt)
    images = sample_images((128, 128), 1)
    base = create_session(export(tmp, "d0", ckpt, image_size=128, nms="none")).run(None, {"images": nchw(images)})
    nhwc_u8 = create_session(export(tmp, "d0", ckpt, image_size=128, nms="none", input_format="nhwc",
                                    input_dtype="uint8")).run(None, {"images": images})
    from effdet.config import get_config
    c = get_config("d0")
    normalized = (nchw(images) - np.float32(c.mean).reshape(1, 3, 1, 1)) / np.float32(c.std).reshape(1, 3, 1, 1)
    raw = create_session(export(tmp, "d0", ckpt, image_size=128, nms="none", preprocess=False)).run(
        None, {"images": normalized.astype(np.float32)})
    for other in (nhwc_u8, raw):
        np.testing.assert_allclose(other[0], base[0], atol=1e-3)
        np.testing.assert_allclose(other[1], base[1], atol=1e-5)


def cli(*args):
    return subprocess.run([sys.executable, "-m", "effdet_deploy", "export", *args], capture_output=True, text=True)


def test_bad_input_is_one_line_exit_2_and_no_file(tmp):
    out = tmp / "bad.onnx"
    corrupt = tmp / "corrupt.pth"
    corrupt.write_bytes(b"not a checkpoint")
    cases = [(["--model", "d9"], "unknown model"), (["--model", "d0", "--checkpoint", str(tmp / "none.pth")], "not found"),
             (["--model", "d0", "--checkpoint", str(corrupt)], "not a readable PyTorch checkpoint"),
             (["--model", "d0", "--image-size", "0"], "positive"), (["--model", "d0", "--dynamic-batch", "4,2,1"], "MIN<=OPT<=MAX"),
             (["--model", "d0", "--nms", "onnx", "--pre-nms-top-k", "3840"], "TopK K < 3840"),
             (["--model", "d0", "--nms", "onnx", "--pre-nms-top-k", "50"], "--max-detections (100)"),
             (["--model", "d0", "--nms", "efficient", "--pre-nms-top-k", "2000"], "fixed at 4096")]
    for args, message in cases:
        r = cli(*args, "--output", str(out))
        assert r.returncode == 2 and r.stderr.count("\n") == 1 and message in r.stderr, (args, r.stderr)
    r = cli("--model", "d0", "--output", str(tmp / "missing-dir" / "x.onnx"))
    assert r.returncode == 2 and "not writable" in r.stderr
    assert not out.exists() and not list(tmp.glob(".bad.onnx*"))


BIG = {"tf_efficientdet_d5", "tf_efficientdet_d6", "tf_efficientdet_d7", "tf_efficientdet_d7x"}   # 8-19 s each


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.integration) if n in BIG else n
                                  for n in MODEL_TABLE], ids=list(MODEL_TABLE))
def test_every_model_exports_at_small_size(tmp, name):
    size = 256
    path = export(tmp, name, None, image_size=size, nms="efficient", num_classes=3)
    session = create_session(path)
    num, boxes, scores, classes = session.run(None, {"images": nchw(sample_images((size, size), 1))})
    assert boxes.shape == (1, 100, 4) and classes.dtype == np.int32
    path.unlink()
