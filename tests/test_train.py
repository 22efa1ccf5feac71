"""Trainer pieces: box coding is the exact inverse of the runtime's decoding, anchor matching follows
the official rules, and a few optimizer steps on a tiny batch lower the loss."""
import numpy as np
import torch

from effdet import create_model
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
