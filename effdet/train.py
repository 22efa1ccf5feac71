"""A minimal, honest EfficientDet trainer, practical on CPU (it trained the shipped `shapes_d0`).

Anchor matching as the official implementation (IoU >= 0.5 positive, < 0.5 negative, and every object
forced onto its best anchor), focal loss (alpha 0.25, gamma 1.5) normalised by the positives, Huber box
loss (delta 0.1, weight 50) on the (ty, tx, th, tw) coding that `runtime.boxes.decode_boxes` inverts,
AdamW with linear warm-up and cosine decay, gradient clipping, and an EMA of weights and BN statistics.
Data comes from `effdet.synthetic`: image i of a seed is always the same image, so a run is repeatable.
"""
from __future__ import annotations

import io
import math
import signal
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from effdet.checkpoint import facts_of, load_checkpoint_file
from effdet.config import ALIASES, get_config
from effdet.factory import create_model
from effdet.model import EfficientDet
from effdet.predict import model_anchors
from effdet.synthetic import CLASS_NAMES, SynthSpec, render
from effdet.train_settings import TrainSettings, check_settings
from runtime.atomic import write_atomic
from runtime.errors import DeployError
from runtime.interrupts import deferred_sigint
from runtime.log import logger

FOCAL_ALPHA = 0.25
FOCAL_GAMMA = 1.5
HUBER_DELTA = 0.1
BOX_LOSS_WEIGHT = 50.0
MATCH_IOU = 0.5


def encode_boxes(boxes: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """xyxy boxes [N,4] against xyxy anchors [N,4] -> (ty, tx, th, tw) [N,4]; inverse of decode_boxes."""
    wa, ha = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
    xa, ya = (anchors[:, 0] + anchors[:, 2]) / 2, (anchors[:, 1] + anchors[:, 3]) / 2
    w = (boxes[:, 2] - boxes[:, 0]).clamp(min=1e-3)
    h = (boxes[:, 3] - boxes[:, 1]).clamp(min=1e-3)
    xc, yc = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    return torch.stack([(yc - ya) / ha, (xc - xa) / wa, torch.log(h / ha), torch.log(w / wa)], dim=1)


def iou_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of xyxy [M,4] x [K,4] -> [M,K]."""
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    return inter / (area_a[:, None] + area_b[None, :] - inter).clamp(min=1e-6)


def match_anchors(anchors: torch.Tensor, boxes: torch.Tensor, classes: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """-> (class target [N] int64: -1 background, else class; box target [N,4] coded, valid where >= 0)."""
    n = anchors.shape[0]
    cls_target = torch.full((n,), -1, dtype=torch.int64)
    box_target = torch.zeros((n, 4))
    if boxes.shape[0] == 0:
        return cls_target, box_target
    iou = iou_matrix(anchors, boxes)
    best_iou, best_gt = iou.max(dim=1)
    best_anchor = iou.argmax(dim=0)                       # force-match: each object gets its best anchor
    best_gt[best_anchor] = torch.arange(boxes.shape[0])
    best_iou[best_anchor] = 1.0
    positive = best_iou >= MATCH_IOU
    cls_target[positive] = classes[best_gt[positive]]
    box_target[positive] = encode_boxes(boxes[best_gt[positive]], anchors[positive])
    return cls_target, box_target


def detection_loss(cls_logits: torch.Tensor, box_reg: torch.Tensor, cls_target: torch.Tensor,
                   box_target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Focal + Huber over a batch ([B,N,C], [B,N,4], [B,N], [B,N,4]) -> (class loss, box loss)."""
    positive = cls_target >= 0
    num_pos = positive.sum().clamp(min=1).float()
    onehot = F.one_hot(cls_target.clamp(min=0), cls_logits.shape[-1]).float() * positive[..., None]
    p = torch.sigmoid(cls_logits)
    ce = F.binary_cross_entropy_with_logits(cls_logits, onehot, reduction="none")
    p_t = onehot * p + (1 - onehot) * (1 - p)
    alpha_t = onehot * FOCAL_ALPHA + (1 - onehot) * (1 - FOCAL_ALPHA)
    cls_loss = (alpha_t * (1 - p_t) ** FOCAL_GAMMA * ce).sum() / num_pos
    box_loss = F.huber_loss(box_reg[positive], box_target[positive], delta=HUBER_DELTA, reduction="sum")
    return cls_loss, box_loss / (num_pos * 4)


class SyntheticBatches(torch.utils.data.Dataset):
    """Training image i = synthetic image (seed, i): normalized [3,H,W] + class/box targets."""

    def __init__(self, model: EfficientDet, seed: int, spec: SynthSpec) -> None:
        self.seed, self.spec = seed, spec
        c = model.config
        self.mean = np.asarray(c.mean, np.float32)
        self.std = np.asarray(c.std, np.float32)
        self.anchors = torch.from_numpy(model_anchors(model, (spec.height, spec.width)))

    def __len__(self) -> int:
        return 2**31 - 1

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        sample = render(self.seed, index, self.spec)
        x = torch.from_numpy(((sample.image.astype(np.float32) - self.mean) / self.std).transpose(2, 0, 1).copy())
        cls_t, box_t = match_anchors(self.anchors, torch.from_numpy(sample.boxes), torch.from_numpy(sample.classes))
        return x, cls_t, box_t


class WeightEMA:
    """Exponential moving average of every float tensor of the state_dict (weights and BN statistics)."""

    def __init__(self, model: EfficientDet, decay: float) -> None:
        self.decay = decay
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self.updates = 0

    @torch.no_grad()
    def update(self, model: EfficientDet) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for k, v in model.state_dict().items():
            if v.dtype.is_floating_point:
                self.state[k].mul_(d).add_(v.detach(), alpha=1 - d)
            else:
                self.state[k].copy_(v)


def lr_at(step: int, s: TrainSettings) -> float:
    """Linear warm-up to lr, then cosine decay to 1% of it."""
    if step < s.warmup_steps:
        return s.lr * (step + 1) / s.warmup_steps
    t = (step - s.warmup_steps) / max(1, s.steps - s.warmup_steps)
    return s.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * t)))


def save_checkpoint(path: Path, model: EfficientDet, ema: WeightEMA, step: int, s: TrainSettings,
                    opt: torch.optim.Optimizer | None = None) -> None:
    """Atomic write of {state_dict, state_dict_ema, step, settings, optimizer} + the facts every consumer reads
    back (effdet.checkpoint.CheckpointFacts: architecture, image size, class names); `create_model` loads the
    EMA weights. The optimizer state (AdamW moments and step counts: tensors, numbers, lists, dicts) loads
    weights-only; --resume continues it, so a resumed run takes the steps an uninterrupted one would."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    state = {"state_dict": model.state_dict(), "state_dict_ema": ema.state, "step": step,
             "settings": asdict(s), "architecture": model.config.name,
             "image_size": list(model.config.image_size), "class_names": list(CLASS_NAMES)}
    torch.save({**state, "optimizer": opt.state_dict()} if opt is not None else state, buf)
    write_atomic(path, buf.getvalue())


def make_optimizer(model: EfficientDet, s: TrainSettings) -> torch.optim.Optimizer:
    """AdamW; weight decay on conv weights only (not on biases and BN parameters)."""
    decay, no_decay = [], []
    for p in model.parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)
    return torch.optim.AdamW([{"params": decay, "weight_decay": s.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=s.lr)


def train_step(model: EfficientDet, opt: torch.optim.Optimizer, x: torch.Tensor, cls_t: torch.Tensor,
               box_t: torch.Tensor, s: TrainSettings) -> tuple[float, torch.Tensor, torch.Tensor]:
    """One optimizer step (bf16 autocast forward, FP32 loss, clipped gradients) -> (loss, cls, box)."""
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=s.bf16):
        cls_logits, box_reg = model(x.contiguous(memory_format=torch.channels_last))
    cls_loss, box_loss = detection_loss(cls_logits.float(), box_reg.float(), cls_t, box_t)
    loss = cls_loss + BOX_LOSS_WEIGHT * box_loss
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), s.clip_grad)
    opt.step()
    return loss.item(), cls_loss.detach(), box_loss.detach()


def check_output(out: Path, resume: str | Path | None) -> None:
    """OUTPUT is a folder whose last.pth is only ever replaced by the run it came from (--resume it)."""
    if out.exists() and not out.is_dir():
        raise DeployError(f"{out}: --output is a file; give a folder")
    last = out / "last.pth"
    if last.exists() and (resume is None or Path(resume).resolve() != last.resolve()):
        raise DeployError(f"{last}: an earlier run's checkpoint; pass --resume {last} to continue it, "
                          "or give another --output")


def read_resume(path: str | Path, s: TrainSettings) -> dict[str, Any]:
    """The training checkpoint to continue, checked before the model is built: readable (the project's
    checkpoint reader), the keys the trainer needs, the architecture it records, a step below --steps."""
    try:
        ckpt = load_checkpoint_file(path)                # read once: the keys below and the facts it records
    except DeployError as e:
        raise DeployError(f"--resume {e}") from None
    facts = facts_of(ckpt, Path(path))
    for key in ("state_dict", "state_dict_ema", "step"):
        if not isinstance(ckpt, dict) or key not in ckpt:   # (a list or plain tensors lack the first)
            raise DeployError(f"--resume {path}: lacks '{key}': not a checkpoint of effdet-deploy train "
                              "(its last.pth holds state_dict, state_dict_ema and step)")
    assert isinstance(ckpt, dict)                        # the loop above refused anything else
    if not all(isinstance(ckpt[k], dict) for k in ("state_dict", "state_dict_ema")) or type(ckpt["step"]) is not int:
        raise DeployError(f"--resume {path}: state_dict/state_dict_ema are not dicts or step is not an integer")
    wanted = get_config(s.model).name
    if facts.model is not None and ALIASES.get(facts.model, facts.model) != wanted:
        raise DeployError(f"--resume {path}: a {facts.model} checkpoint, --model is {wanted} "
                          f"(pass --model {facts.model})")
    if not 0 <= ckpt["step"] < s.steps:
        raise DeployError(f"--resume {path}: it is at step {ckpt['step']}; --steps {s.steps} leaves nothing to train")
    return ckpt


def resume_into(model: EfficientDet, ema: WeightEMA, ckpt: dict[str, Any], path: str | Path) -> int:
    """Load weights and EMA (strict: every key, every shape, the class head too) -> the step to continue at."""
    own = model.state_dict()
    for name in ("state_dict", "state_dict_ema"):
        state = ckpt[name]
        shape = {k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}
        if shape != {k: tuple(v.shape) for k, v in own.items()}:
            bad = sorted(set(shape) ^ set(own)) or [k for k in own if shape[k] != tuple(own[k].shape)]
            raise DeployError(f"--resume {path}: its {name} does not fit {model.config.name} "
                              f"({len(bad)} key(s) missing, extra or of another shape, e.g. {bad[0]})")
    model.load_state_dict(ckpt["state_dict"])
    ema.state = ckpt["state_dict_ema"]
    ema.updates = ckpt["step"]
    return int(ckpt["step"])


def optimizer_fits(saved: Any, opt: torch.optim.Optimizer) -> bool:
    """Whether a saved AdamW state_dict belongs to `opt`: as many groups and parameters per group, and each
    parameter's moments (exp_avg, exp_avg_sq) of its shape; False for anything malformed."""
    params = [p for g in opt.param_groups for p in g["params"]]
    try:
        if [len(g["params"]) for g in saved["param_groups"]] != [len(g["params"]) for g in opt.param_groups]:
            return False
        for index, state in saved["state"].items():
            shapes = {tuple(v.shape) for v in state.values() if isinstance(v, torch.Tensor)}
            if not {"step", "exp_avg", "exp_avg_sq"} <= set(state) or not shapes <= {(), tuple(params[index].shape)}:
                return False
    except (KeyError, TypeError, ValueError, IndexError, AttributeError):
        return False
    return True


def resume_optimizer(opt: torch.optim.Optimizer, ckpt: dict[str, Any], path: str | Path) -> None:
    """AdamW's moments and step counts from the checkpoint, so the resumed run steps as an unbroken one would.
    This run's hyper-parameters (--weight-decay; lr follows the schedule) stay: only the state comes back.
    A last.pth saved before the trainer stored its optimizer resumes with fresh moments, and says so."""
    saved = ckpt.get("optimizer")
    if saved is None:
        logger.info(f"--resume {path}: holds no optimizer state (an older last.pth); AdamW moments start fresh")
        return
    if not optimizer_fits(saved, opt):
        sizes = [len(g["params"]) for g in opt.param_groups]
        raise DeployError(f"--resume {path}: its optimizer state does not fit this trainer's AdamW "
                          f"({len(sizes)} groups of {sizes} parameters, each with exp_avg/exp_avg_sq of its shape)")
    hyper = [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]
    opt.load_state_dict(saved)
    for group, own in zip(opt.param_groups, hyper):
        group.update(own)


def leave_sigint_to_main(worker_id: int) -> None:
    """A DataLoader worker ignores Ctrl-C (a terminal sends it to the whole process group): the main process
    stops it; a worker dying of it first made the main process fail with "DataLoader worker exited unexpectedly"."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def batches_of(loader: torch.utils.data.DataLoader) -> Iterator[Any]:
    """The loader's batches, each received with Ctrl-C held back: the worker passes a batch's tensors as file
    descriptors over a socket, and a KeyboardInterrupt cutting that handshake made the worker print a traceback
    (multiprocessing's resource_sharer) after the command's one line."""
    batches = iter(loader)
    while True:
        with deferred_sigint():
            batch = next(batches, None)
        if batch is None:
            return
        yield batch


def train(s: TrainSettings, output: str | Path, resume: str | Path | None = None) -> Path:
    """Train on synthetic shapes; writes OUTPUT/last.pth every `checkpoint_every` steps and at the end.
    Every setting, the output folder and the --resume file are checked first: bad input runs no step."""
    check_settings(s)
    out = Path(output)
    check_output(out, resume)
    ckpt = read_resume(resume, s) if resume is not None else None
    if s.threads:
        torch.set_num_threads(s.threads)
    torch.manual_seed(s.seed)
    model = create_model(s.model, num_classes=len(CLASS_NAMES), image_size=s.image_size)
    spec = SynthSpec(height=s.image_size, width=s.image_size)
    ema = WeightEMA(model, s.ema_decay)
    opt = make_optimizer(model, s)
    start = 0
    if ckpt is not None and resume is not None:
        start = resume_into(model, ema, ckpt, resume)
        resume_optimizer(opt, ckpt, resume)
    data = SyntheticBatches(model, s.seed, spec)
    sampler = range(start * s.batch, s.steps * s.batch)
    loader = torch.utils.data.DataLoader(data, batch_size=s.batch, sampler=sampler, num_workers=1,
                                         persistent_workers=False, prefetch_factor=4,
                                         worker_init_fn=leave_sigint_to_main)
    model.train().to(memory_format=torch.channels_last)  # ~1.5x faster convolutions on CPU
    t0, seen = time.perf_counter(), 0
    running: list[float] = []
    for step, (x, cls_t, box_t) in enumerate(batches_of(loader), start=start):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, s)
        loss, cls_loss, box_loss = train_step(model, opt, x, cls_t, box_t, s)
        ema.update(model)
        running.append(loss)
        seen += x.shape[0]
        if (step + 1) % s.log_every == 0 or step + 1 == s.steps:
            rate = seen / (time.perf_counter() - t0)
            eta = (s.steps - step - 1) * s.batch / rate
            logger.info(f"step {step + 1}/{s.steps}  loss {np.mean(running):.4f} (cls {cls_loss.item():.4f} "
                        f"box {box_loss.item():.5f})  lr {lr_at(step, s):.2e}  {rate:.1f} img/s  eta {eta / 60:.0f} min")
            running = []
        if (step + 1) % s.checkpoint_every == 0 or step + 1 == s.steps:
            save_checkpoint(out / "last.pth", model, ema, step + 1, s, opt)
    model.eval().to(memory_format=torch.contiguous_format)
    return out / "last.pth"


def export_weights(checkpoint: str | Path, target: str | Path) -> str:
    """The EMA weights of a training checkpoint as a plain FP16 state_dict (what ships); returns sha256."""
    import hashlib

    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True)
    state = {k: (v.half() if v.dtype.is_floating_point else v) for k, v in ckpt["state_dict_ema"].items()}
    buf = io.BytesIO()
    torch.save(state, buf)
    write_atomic(target, buf.getvalue())
    return hashlib.sha256(buf.getvalue()).hexdigest()
