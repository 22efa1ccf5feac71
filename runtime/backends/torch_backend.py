"""PyTorch backend: an effdet checkpoint (or a shipped model name) run eagerly, with the same numpy
decoding and EfficientNMS reference as the exported graph. Imports effdet/torch lazily, only here."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from runtime.backends.base import Backend
from runtime.errors import DeployError
from runtime.model_info import ModelInfo


class TorchBackend(Backend):
    """`path` is a checkpoint (needs `model`, or a training checkpoint that names it) or a shipped model
    name such as "shapes_d0". Input: NHWC uint8 batches in network-input size."""

    name = "torch"

    def __init__(self, path: str | Path, device: str | None = None, model: str | None = None,
                 image_size: int | tuple[int, int] | None = None, threads: int | None = None) -> None:
        self.model_name, self.image_size = model, image_size
        if threads:                      # `--threads`: PyTorch's intra-op pool (process-wide)
            import torch

            torch.set_num_threads(threads)
        super().__init__(path, device)

    def open(self) -> ModelInfo:
        from effdet import create_model
        self.torch_device = _torch_device(self.device)
        source = str(self.path)
        if has_shipped_weights(source) and not self.path.is_file():
            self.model = create_model(source, pretrained=True, image_size=self.image_size)
        else:
            name = self.model_name or _training_model_name(self.path)
            self.model = create_model(name, checkpoint=self.path, image_size=self.image_size)
        self.model.to(self.torch_device)
        c = self.model.config
        return ModelInfo(model=c.name, image_size=c.image_size, mean=c.mean, std=c.std, num_classes=c.num_classes,
                         class_names=c.class_names, input_layout="nhwc", input_dtype="uint8", nms="none",
                         batch=(1, 1 << 30), precision="fp32")

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        from effdet.predict import raw_outputs   # the same PyTorch reference the export is tested against

        boxes, scores = raw_outputs(self.model, batch)
        return {"boxes": boxes, "scores": scores}


def _torch_device(name: str | None) -> Any:
    """The PyTorch device for --device, or one line saying why it cannot be used here."""
    import torch

    try:
        device = torch.device(name or "cpu")
    except RuntimeError:
        raise DeployError(f"device '{name}' is not a PyTorch device (cpu, cuda, cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeployError(f"device '{name}': this PyTorch ({torch.__version__}) has no usable CUDA; "
                          "use --device cpu, or a CUDA build of PyTorch on a machine with an NVIDIA GPU")
    return device


def has_shipped_weights(name: str) -> bool:
    """Whether `name` is a model that ships trained weights (effdet.pretrained; needs torch installed)."""
    try:
        from effdet.pretrained import has_pretrained
    except ImportError:
        return False
    return has_pretrained(name)


def _training_model_name(path: Path) -> str:
    """The architecture a checkpoint was trained as, when our trainer wrote it; else ask for `model=`.
    An unreadable file gets checkpoint_facts' error (missing, corrupt), not a request for the architecture."""
    from effdet.checkpoint import checkpoint_facts

    name = checkpoint_facts(path).model
    if name:
        return name
    raise DeployError(f"{path}: say which architecture this checkpoint is (--arch, or model= in Python; "
                      "e.g. tf_efficientdet_d0)")
