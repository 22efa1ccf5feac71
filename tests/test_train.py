"""Trainer pieces: box coding is the exact inverse of the runtime's decoding, anchor matching follows
the official rules, and a few optimizer steps on a tiny batch lower the loss."""
import numpy as np
import torch

from effdet import create_model
from effdet.checkpoint import load_checkpoint_file
from effdet.predict import model_anchors
from effdet.synthetic import CLASS_NAMES, render
from effdet.train import detection_loss, encode_boxes, match_anchors
from runtime.boxes import decode_boxes


def test_encode_inverts_decode():
    rng = np.random.default_rng(0)
    anchors = np.sort(rng.uniform(0, 200, (50, 4)).reshape(50, 2, 2), axis=1).reshape(50, 4).astype(np.float32)
    anchors[:, 2:] += 5
    boxes = anchors + rng.uniform(-4, 4, anchors.shape).astype(np.float32)
    coded = encode_boxes(torch.from_numpy(boxes), torch.from_numpy(anchors)).numpy()
    assert np.abs(decode_boxes(coded, anchors) - boxes).max() < 1e-3


def test_anchor_matching():
    anchors = torch.tensor([[0, 0, 10, 10], [0, 0, 20, 20], [50, 50, 60, 60], [100, 100, 140, 140]], dtype=torch.float32)
    boxes = torch.tensor([[0, 0, 18, 18], [102, 102, 112, 112]], dtype=torch.float32)
    cls, box = match_anchors(anchors, boxes, torch.tensor([2, 4]))
    # anchor 1: IoU 0.81 -> class 2; anchor 3: IoU 0.0625 but the object's best anchor -> forced, class 4
    assert cls.tolist() == [-1, 2, -1, 4]
    assert torch.allclose(box[0], torch.zeros(4)) and not torch.allclose(box[1], torch.zeros(4))


def test_few_steps_lower_the_loss():
    torch.manual_seed(0)
    model = create_model("tf_efficientdet_d0", num_classes=len(CLASS_NAMES), image_size=128).train()
    anchors = torch.from_numpy(model_anchors(model, (128, 128)))
    xs, cls_t, box_t = [], [], []
    for i in range(2):
        s = render(0, i)
        small = s.image[::2, ::2]
        xs.append(torch.from_numpy(((small - np.asarray(model.config.mean)) / np.asarray(model.config.std))
                                   .astype(np.float32).transpose(2, 0, 1).copy()))
        c, b = match_anchors(anchors, torch.from_numpy(s.boxes / 2), torch.from_numpy(s.classes))
        cls_t.append(c)
        box_t.append(b)
    x, ct, bt = torch.stack(xs), torch.stack(cls_t), torch.stack(box_t)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(12):
        c, b = model(x)
        lc, lb = detection_loss(c, b, ct, bt)
        loss = lc + 50 * lb
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0], losses


def test_train_run_writes_a_loadable_checkpoint(tmp_path):
    """Two real steps of the trainer (data loader, EMA, schedule, atomic checkpoint) at a tiny size."""
    from effdet.train import export_weights, train
    from effdet.train_settings import TrainSettings

    path = train(TrainSettings(image_size=128, steps=2, batch=2, warmup_steps=1, log_every=1, checkpoint_every=1,
                               threads=1), tmp_path)
    ckpt = torch.load(path, weights_only=True)
    assert ckpt["step"] == 2 and ckpt["settings"]["image_size"] == 128 and not list(tmp_path.glob("*.tmp"))
    model = create_model("tf_efficientdet_d0", checkpoint=path)          # loads the EMA weights
    assert model.config.num_classes == len(CLASS_NAMES)
    assert torch.equal(model.state_dict()["class_net.predict.conv_pw.bias"],
                       ckpt["state_dict_ema"]["class_net.predict.conv_pw.bias"])
    digest = export_weights(path, tmp_path / "w.pth")
    assert len(digest) == 64 and next(iter(torch.load(tmp_path / "w.pth", weights_only=True).values())).dtype == torch.float16


def _tiny(steps, **kw):
    """A 128x128 D0 run; warm-up covers every step, so the learning rate of step i does not depend on --steps."""
    from effdet.train_settings import TrainSettings

    return TrainSettings(image_size=128, steps=steps, batch=2, warmup_steps=2, log_every=1, checkpoint_every=1,
                         threads=1, **kw)


def test_resume_continues_the_optimizer(tmp_path):
    """1 step + --resume to 2 ends on the very weights of 2 steps straight: the data, schedule and EMA
    continue already, so this holds only if AdamW's moments and step counts come back too (a fresh AdamW
    makes the second update lr * sign-like, a different weight). Same process, threads=1, no randomness in
    training: the two runs do the same float operations, so the weights are compared exactly."""
    from effdet.train import train

    straight = torch.load(train(_tiny(2), tmp_path / "a"), weights_only=True)
    first = train(_tiny(1), tmp_path / "b")
    resumed = load_checkpoint_file(train(_tiny(2), tmp_path / "b", resume=first))   # the project's reader
    assert resumed["step"] == straight["step"] == 2
    for name in ("state_dict", "state_dict_ema"):
        differ = [k for k, v in straight[name].items() if not torch.equal(v, resumed[name][k])]
        assert not differ, f"{name}: {len(differ)} tensors differ, e.g. {differ[:3]}"
    moments = resumed["optimizer"]["state"]
    assert moments and all(float(s["step"]) == 2 for s in moments.values())


def test_resume_of_a_checkpoint_without_optimizer_state(tmp_path, caplog):
    """A last.pth written before the optimizer state was saved still resumes; one log line says so."""
    from effdet.train import WeightEMA, save_checkpoint, train

    torch.manual_seed(0)
    model = create_model("tf_efficientdet_d0", num_classes=len(CLASS_NAMES), image_size=128)
    old = tmp_path / "run" / "last.pth"
    save_checkpoint(old, model, WeightEMA(model, 0.9), 1, _tiny(2))              # no optimizer: the old format
    with caplog.at_level("INFO", logger="effdet_deploy"):
        assert torch.load(train(_tiny(2), old.parent, resume=old), weights_only=True)["step"] == 2
    fresh = [r.getMessage() for r in caplog.records if "optimizer" in r.getMessage()]
    assert len(fresh) == 1 and str(old) in fresh[0] and "fresh" in fresh[0], fresh


def test_optimizer_fits_refuses_other_layouts():
    from effdet.train import optimizer_fits

    layer = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW([{"params": [layer.weight]}, {"params": [layer.bias]}])
    layer(torch.ones(1, 3)).sum().backward()
    opt.step()
    saved = opt.state_dict()
    assert optimizer_fits(saved, opt)
    other = torch.optim.AdamW(layer.parameters())                             # one group of two
    assert not optimizer_fits(saved, other) and not optimizer_fits([1, 2], opt) and not optimizer_fits({}, opt)
    wrong_shape = {**saved, "state": {**saved["state"], 0: {**saved["state"][0], "exp_avg": torch.zeros(3)}}}
    no_moment = {**saved, "state": {0: {"step": saved["state"][0]["step"]}}}
    assert not optimizer_fits(wrong_shape, opt) and not optimizer_fits(no_moment, opt)
