"""Helpers to rebuild the effdet reference fixtures (see fixtures/make_effdet_reference.py)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

FIXTURES = Path(__file__).parent / "fixtures"
CASES = {"tf_efficientdet_d0": ((256, 320), 5), "efficientdet_d0": ((256, 256), 5),
         "tf_efficientdet_lite0": ((320, 320), 5)}


def load_reference(name: str) -> tuple[dict[str, torch.Tensor], dict[str, np.ndarray]]:
    """(effdet state_dict with exact fp32 weights, {'input', 'cls', 'box'}) for one fixture."""
    data = np.load(FIXTURES / f"effdet_{name}.npz")
    state: dict[str, torch.Tensor] = {}
    for key in data.files:
        if key.startswith("code:"):
            k = key[5:]
            codes = torch.from_numpy(data[key].astype(np.float32))
            state[k] = codes * torch.tensor(float(data[f"scale:{k}"]), dtype=torch.float32)
            if k.endswith("running_var"):
                state[k.replace("running_var", "num_batches_tracked")] = torch.tensor(0)
    arrays = {k: data[k] for k in ("input", "cls", "box")}
    arrays["input"] = arrays["input"].astype(np.float32)
    return state, arrays
