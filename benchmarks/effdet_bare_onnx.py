"""Export the real `effdet` package's bare D0 network with plain torch.onnx, for bench_export.py's
"no slower than effdet's bare network" comparison (issue 12). Runs in a SEPARATE venv, because `effdet`
(rwightman) and this project share the import name:

    python -m venv /tmp/effdet-venv
    /tmp/effdet-venv/bin/pip install torch==2.14.1 torchvision==0.29.1 effdet timm onnx
    /tmp/effdet-venv/bin/python benchmarks/effdet_bare_onnx.py /tmp/effdet_d0_bare.onnx
    /tmp/effdet-venv/bin/python benchmarks/effdet_bare_onnx.py /tmp/effdet_d0_bare_dyn.onnx --dynamic-batch
    .venv/bin/python benchmarks/bench_export.py --effdet-onnx /tmp/effdet_d0_bare.onnx \
        --effdet-onnx-dynamic /tmp/effdet_d0_bare_dyn.onnx

`--dynamic-batch` exports the batch axis as a symbol (the control for the batch-1 vs batch-8 comparison:
what ONNX Runtime does with a batch of effdet's own network). The network only:
`create_model(..., bench_task="")` returns EfficientDet without DetBenchPredict, so the file has no
preprocessing, no anchor decoding and no NMS (random weights: the timing does not depend on them).
"""
from __future__ import annotations

import argparse
import sys
import warnings
from importlib.metadata import version

import effdet
import torch
from effdet import create_model  # the PyPI package, not ours: run from the separate venv

if "site-packages" not in (effdet.__file__ or ""):
    sys.exit(f"{effdet.__file__}: this is our effdet, not the PyPI package; run the script from the separate venv")

SIZE = 512


def main(path: str, dynamic_batch: bool) -> None:
    torch.manual_seed(0)
    model = create_model("tf_efficientdet_d0", bench_task="", num_classes=90, pretrained=False,
                         pretrained_backbone=False).eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, 3, SIZE, SIZE),), path, dynamo=False, opset_version=17,
                          input_names=["images"], dynamic_axes={"images": {0: "batch"}} if dynamic_batch else None)
    print(f"wrote {path}: effdet {version('effdet')} tf_efficientdet_d0 bare network"
          f"{', dynamic batch' if dynamic_batch else ''}, "
          f"torch {torch.__version__}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="effdet's bare D0 network -> ONNX (run in the separate venv)")
    ap.add_argument("output")
    ap.add_argument("--dynamic-batch", action="store_true", help="batch axis as a symbol (default: batch 1)")
    args = ap.parse_args()
    main(args.output, args.dynamic_batch)
