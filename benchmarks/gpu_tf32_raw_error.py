"""How far TF32 convolutions on a GPU move the raw outputs (decoded boxes, sigmoid scores of every anchor) from
CPU FP32: the evidence behind compare's FP32 limits (runtime/parity.py:TOLERANCES). TensorRT builds FP32 engines
with TF32 by default on Ampere and later; this measures the same arithmetic through PyTorch's cuDNN (TF32 on and
off), not TensorRT. shapes_d0 at 256 and 512, unfused and fused, 6 generated scenes of seed 23.

    python benchmarks/gpu_tf32_raw_error.py        # needs a CUDA build of PyTorch and a GPU
"""
import copy, sys
import numpy as np, torch
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
from effdet import create_model
from effdet.predict import raw_outputs
from effdet.synthetic import render
from runtime.letterbox import letterbox
from runtime.parity import TOLERANCES, tensor_stats

cuda = torch.cuda.is_available()
print("torch", torch.__version__, "device", torch.cuda.get_device_name(0) if cuda else "none")
lim = TOLERANCES["fp32"]
print("fp32 raw limits: score max", lim["raw_score_atol"], "cosine", lim["raw_cosine"], "box mean px", lim["raw_box_mean"])
for size in (256, 512):
    cpu = create_model("shapes_d0", pretrained=True, image_size=size).eval()
    for fused in (False, True):
        ref_model = copy.deepcopy(cpu).fuse() if fused else cpu
        imgs = np.stack([letterbox(render(23, i).image, (size, size), cpu.config.mean)[0] for i in range(6)])
        with torch.no_grad():
            ref = raw_outputs(ref_model, imgs)
        gpu = copy.deepcopy(ref_model).to("cuda" if cuda else "cpu")
        for tf32 in ((True, False) if cuda else (False,)):
            torch.backends.cudnn.allow_tf32 = tf32
            torch.backends.cuda.matmul.allow_tf32 = tf32
            with torch.no_grad():
                got = raw_outputs(gpu, imgs)
            b, s = tensor_stats(ref[0], got[0]), tensor_stats(ref[1], got[1])
            print(f"size {size} {'fused  ' if fused else 'unfused'} tf32={tf32!s:5}: boxes max {b.max_abs:.3g} px mean {b.mean_abs:.3g} px "
                  f"cos {b.cosine:.9f} | scores max {s.max_abs:.3g} mean {s.mean_abs:.3g} cos {s.cosine:.9f}")
