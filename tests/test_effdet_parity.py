"""Same weights -> same numbers as rwightman/effdet (fixtures generated from the real package)."""
import logging

import numpy as np
import pytest
import torch

from effdet import create_model
from reference import CASES, load_reference
from runtime.errors import DeployError


@pytest.fixture(scope="module", params=list(CASES))
def case(request, tmp_path_factory):
    name = request.param
    state, ref = load_reference(name)
    path = tmp_path_factory.mktemp(name) / "ckpt.pth"
    torch.save(state, path)
    return name, path, state, ref


@pytest.fixture(scope="module")
def atol(case):
    """Per output, how far two float32 runs of the same network may differ: 1e-5, or twice this model's own
    float32 rounding (its float32 vs float64 outputs here) where that is larger, never above 1e-4. Lite0's
    float32 rounding is ~2e-5: with other kernels (torch 2.11 on a 16-core Xeon) its outputs moved 1.7e-5 from
    effdet's fixture, while a wrong layer moves them by orders of magnitude more."""
    name, path, _, ref = case
    model = create_model(name, checkpoint=path)
    single = run(model, ref)
    with torch.no_grad():
        double = model.double()(torch.from_numpy(ref["input"]).double())
    return {k: min(1e-4, max(1e-5, 2 * float(np.abs(s - d.numpy()).max())))
            for k, s, d in zip(("cls", "box"), single, double)}


def run(model, ref):
    with torch.no_grad():
        cls, box = model(torch.from_numpy(ref["input"]))
    return cls.numpy(), box.numpy()


def test_outputs_equal_effdet(case, atol):
    name, path, _, ref = case
    model = create_model(name, checkpoint=path)
    cls, box = run(model, ref)
    assert cls.shape == ref["cls"].shape and box.shape == ref["box"].shape
    print(f"{name}: max |cls - effdet| = {np.abs(cls - ref['cls']).max():.2e}, box {np.abs(box - ref['box']).max():.2e}")
    np.testing.assert_allclose(cls, ref["cls"], atol=atol["cls"], rtol=1e-5)
    np.testing.assert_allclose(box, ref["box"], atol=atol["box"], rtol=1e-5)


def test_fused_equals_unfused(case):
    """fuse() is exact algebra: in float64 fused == unfused to 1e-10 relative; in float32 both carry
    their own rounding (the unfused fp32 model is itself ~1e-5 from the fp64 one on Lite0)."""
    name, path, _, ref = case
    size = ref["input"].shape[2:]
    for dtype, bound in ((torch.float64, 1e-10), (torch.float32, 3e-5)):
        model = create_model(name, checkpoint=path).to(dtype)
        fused = create_model(name, checkpoint=path).to(dtype).fuse(size)
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
        assert not any(n.endswith("edge_weights") for n, _ in fused.named_parameters())
        x = torch.from_numpy(ref["input"]).to(dtype)
        with torch.no_grad():
            pairs = list(zip(fused(x), model(x)))
        for a, b in pairs:
            rel = float((a - b).abs().max() / b.abs().max())
            print(f"{name} {dtype}: fused vs unfused max relative error {rel:.2e}")
            assert rel <= bound


@pytest.mark.parametrize("wrap", ["state_dict", "model", "state_dict_ema", "module_prefix"])
def test_wrapped_checkpoints(case, wrap, tmp_path, atol):
    name, _, state, ref = case
    if wrap == "module_prefix":
        obj = {f"module.{k}": v for k, v in state.items()}
    else:
        obj = {wrap: state, "epoch": torch.tensor(3)} if wrap != "state_dict_ema" else {"state_dict": {}, wrap: state}
    torch.save(obj, tmp_path / "c.pth")
    cls, _ = run(create_model(name, checkpoint=tmp_path / "c.pth"), ref)
    np.testing.assert_allclose(cls, ref["cls"], atol=atol["cls"], rtol=1e-5)


def test_bad_checkpoints_name_the_problem(case, tmp_path):
    name, path, state, _ = case
    with pytest.raises(DeployError, match="not found"):
        create_model(name, checkpoint=tmp_path / "nope.pth")
    (tmp_path / "trunc.pth").write_bytes(path.read_bytes()[:1000])
    with pytest.raises(DeployError, match="trunc.pth: not a readable PyTorch checkpoint"):
        create_model(name, checkpoint=tmp_path / "trunc.pth")
    partial = {k: v for k, v in state.items() if not k.startswith("box_net.predict")}
    partial["extra.weight"] = torch.zeros(1)
    torch.save(partial, tmp_path / "partial.pth")
    with pytest.raises(DeployError, match=r"3 missing key\(s\): box_net.predict.conv_dw.weight.*1 unexpected key\(s\): extra.weight"):
        create_model(name, checkpoint=tmp_path / "partial.pth")
    other = "tf_efficientdet_d1" if "lite" not in name else "tf_efficientdet_lite1"
    with pytest.raises(DeployError, match="does not match|wrong shape"):
        create_model(other, checkpoint=path)


def test_num_classes_reinitializes_class_head(case, caplog, atol):
    name, path, state, ref = case
    with caplog.at_level(logging.WARNING, logger="effdet_deploy"):
        model = create_model(name, checkpoint=path, num_classes=3)
    assert "class head re-initialized" in caplog.text
    cls, box = run(model, ref)
    assert cls.shape[-1] == 3
    np.testing.assert_allclose(box, ref["box"], atol=atol["box"], rtol=1e-5)  # the rest still loaded
    assert create_model(name, checkpoint=path).config.num_classes == 5  # taken from the checkpoint
