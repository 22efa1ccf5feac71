"""Reading effdet checkpoints: plain state_dicts as `effdet.create_model(...)` saves them, or wrapped in
{"state_dict"|"model"|"state_dict_ema"|"model_ema": ...}, with "module."/"model." prefixes (DDP, the
DetBench wrapper). Strict key matching; anything wrong is one DeployError naming the keys.
Training checkpoints also record the architecture, image size and class names (CheckpointFacts), so
export, the Detector and the pipeline need not be told them again.
"""
from __future__ import annotations

import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from effdet.config import parse_image_size
from runtime.errors import DeployError
from runtime.log import logger

WRAPPER_KEYS = ("state_dict_ema", "model_ema", "state_dict", "model")  # EMA weights preferred
PREFIXES = ("module.", "model.")
CLASS_HEAD = "class_net.predict.conv_pw"


@dataclass(frozen=True)
class CheckpointFacts:
    """What a training checkpoint records beside its weights (effdet/train.py writes them); empty if not."""

    model: str | None = None
    image_size: tuple[int, int] | None = None
    class_names: tuple[str, ...] = ()


def load_checkpoint_file(path: str | Path) -> object:
    """The object a checkpoint file holds, as saved (weights-only load); one DeployError line if unreadable."""
    path = Path(path)
    if not path.is_file():
        raise DeployError(f"{path}: checkpoint not found")
    if path.stat().st_size == 0:
        raise DeployError(f"{path}: not a readable PyTorch checkpoint (the file is empty)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, ValueError, KeyError, IndexError, TypeError, AttributeError,
            pickle.UnpicklingError, zipfile.BadZipFile, OSError) as e:   # a text file as .pth: KeyError, IndexError
        raise DeployError(f"{path}: not a readable PyTorch checkpoint ({_load_failure(e)})") from None


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], CheckpointFacts]:
    """The tensors of a checkpoint file (unwrapped, training prefixes removed) and the facts it records."""
    path = Path(path)
    obj = load_checkpoint_file(path)
    facts = facts_of(obj, path)
    if isinstance(obj, dict):
        for key in WRAPPER_KEYS:
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise DeployError(f"{path}: does not hold a state_dict of tensors")
    return {_strip(k): v for k, v in obj.items() if not _strip(k).startswith("anchors.")}, facts


def _load_failure(error: Exception) -> str:
    """The reason inside torch's weights-only error, without its advice to load with weights_only=False
    (which runs whatever code the file holds: we never do that)."""
    text = str(error)
    if isinstance(error, (KeyError, IndexError, TypeError, AttributeError)):   # torch.load choking on other bytes
        return f"corrupt, or not a PyTorch file: {type(error).__name__} {text[:80]} while reading it"
    marker = "WeightsUnpickler error:"
    if marker not in text:   # e.g. a truncated zip: its first sentence names it
        return _first_sentence(text.splitlines()[0]) if text.strip() else type(error).__name__
    paragraphs = [" ".join(part.split()) for part in text.split(marker, 1)[1].split("\n\n")]
    reason = _first_sentence(next((part for part in paragraphs if part), ""))
    if reason.startswith("Unsupported global"):
        return (f"it holds Python objects beyond tensors and plain containers, which a weights-only load "
                f"refuses: {reason}; save the model's state_dict() instead")
    return f"unpickling stopped: {reason}" if reason else "corrupt, or not a PyTorch file"


def _first_sentence(text: str) -> str:
    return text.split(". ")[0].rstrip(".")[:200]


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint file, unwrapped and with training prefixes removed."""
    return read_checkpoint(path)[0]


def checkpoint_facts(path: str | Path) -> CheckpointFacts:
    """Architecture, image size and class names a checkpoint records (CheckpointFacts() for plain state_dicts)."""
    return read_checkpoint(path)[1]


def facts_of(obj: object, path: Path) -> CheckpointFacts:
    """Top-level architecture / image_size / class_names of a training checkpoint (its `settings` as fallback)."""
    if not isinstance(obj, dict):
        return CheckpointFacts()
    settings = obj["settings"] if isinstance(obj.get("settings"), dict) else {}
    model = obj.get("architecture", settings.get("model"))
    size = obj.get("image_size", settings.get("image_size"))
    names = obj.get("class_names", ())
    try:
        return CheckpointFacts(str(model) if model is not None else None,
                               parse_image_size(size) if size is not None else None,
                               tuple(str(n) for n in names))
    except (DeployError, TypeError) as e:
        raise DeployError(f"{path}: malformed image_size/class_names in the checkpoint ({e})") from None


def _strip(key: str) -> str:
    for prefix in PREFIXES:
        if key.startswith(prefix):
            return key[len(prefix):]
    return key


def checkpoint_num_classes(state: dict[str, torch.Tensor], anchors_per_location: int) -> int | None:
    """Number of classes the class head of a state_dict predicts, if it has one."""
    w = state.get(f"{CLASS_HEAD}.weight")
    return None if w is None else w.shape[0] // anchors_per_location


def other_architecture(facts: CheckpointFacts, wanted: str) -> str | None:
    """The architecture a checkpoint records when it is not `wanted` (aliases resolved), else None."""
    from effdet.config import ALIASES

    if facts.model is None:
        return None
    recorded = ALIASES.get(facts.model, facts.model)
    return recorded if recorded != ALIASES.get(wanted, wanted) else None


def wrong_architecture(source: str | Path, recorded: str, wanted: str) -> DeployError:
    """One line naming both architectures (not hundreds of missing keys): the fix is the other --model."""
    return DeployError(f"{source}: the checkpoint is a {recorded} (recorded in the file), the model asked for is "
                       f"{wanted}; pass --model {recorded}")


def load_state(model: nn.Module, state: dict[str, torch.Tensor], source: str,
               facts: CheckpointFacts = CheckpointFacts()) -> None:
    """Strict load; the class head is skipped (kept re-initialized) when its shape differs."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    name = model.config.name  # type: ignore[union-attr]
    recorded = other_architecture(facts, name)
    reshaped = [k for k in state if k in own and state[k].shape != own[k].shape and not k.startswith(CLASS_HEAD)]
    if recorded is not None and (missing or unexpected or reshaped):
        raise wrong_architecture(source, recorded, name)
    if state and not set(state) & set(own):
        raise DeployError(f"{source}: not an EfficientDet state_dict: none of its {len(state)} key(s) is one of "
                          f"{name}'s (first: {next(iter(state))})")
    if missing or unexpected:
        raise DeployError(f"{source}: checkpoint does not match {model.config.name}: "  # type: ignore[union-attr]
                          f"{_few('missing', missing)}{_few('unexpected', unexpected)}".rstrip("; "))
    head_keys = {k for k in state if k.startswith(CLASS_HEAD)}
    mismatched = [k for k in state if state[k].shape != own[k].shape]
    if mismatched and set(mismatched) <= head_keys:
        logger.warning("%s: class head has %d outputs, model wants %d; class head re-initialized", source,
                       state[f"{CLASS_HEAD}.weight"].shape[0], own[f"{CLASS_HEAD}.weight"].shape[0])
        state = {k: v for k, v in state.items() if k not in head_keys}
    elif mismatched:
        k = mismatched[0]
        raise DeployError(f"{source}: {len(mismatched)} tensor(s) have the wrong shape, e.g. {k} "
                          f"{tuple(state[k].shape)} vs {tuple(own[k].shape)} in {model.config.name}")  # type: ignore[union-attr]
    model.load_state_dict({**own, **state}, strict=True)


def _few(label: str, keys: list[str], n: int = 5) -> str:
    if not keys:
        return ""
    more = f" (+{len(keys) - n} more)" if len(keys) > n else ""
    return f"{len(keys)} {label} key(s): {', '.join(keys[:n])}{more}; "
