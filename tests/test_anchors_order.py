"""Anchor order and box coding, checked on hand-computed tiny cases."""
import numpy as np
import torch

from effdet import create_model
from effdet.model import flatten_levels
from runtime.anchors import feature_sizes, generate_anchors, num_anchors
from runtime.boxes import decode_boxes


def test_feature_sizes_are_ceil_divisions():
    assert feature_sizes((320, 320), 7)[3:] == [(40, 40), (20, 20), (10, 10), (5, 5), (3, 3)]
    assert num_anchors((320, 320), 3, 7, 9) == 19206
    assert num_anchors((512, 512), 3, 7, 9) == 49104


def test_anchors_by_hand():
    # one level (P3 of a 16x16 image: 2x2 cells, stride 8), one scale, ratios (1,1) and (1.4,0.7)
    a = generate_anchors((16, 16), 3, 3, 1, [(1.0, 1.0), (1.4, 0.7)], 4.0)
    half = 4.0 * 8 / 2  # anchor_scale * stride / 2 = 16
    expected = []
    for cy in (4.0, 12.0):          # rows first
        for cx in (4.0, 12.0):      # then columns
            expected.append([cx - half, cy - half, cx + half, cy + half])
            expected.append([cx - half * 1.4, cy - half * 0.7, cx + half * 1.4, cy + half * 0.7])
    np.testing.assert_allclose(a, np.float32(expected), rtol=1e-6)
    # octave scales are the outer loop at a position: 2^(0/2), then 2^(1/2)
    b = generate_anchors((16, 16), 3, 3, 2, [(1.0, 1.0)], 4.0)
    np.testing.assert_allclose(b[1, 2] - b[1, 0], 32 * 2 ** 0.5, rtol=1e-6)


def test_decode_by_hand():
    anchors = np.float32([[10, 20, 30, 60]])  # w 20, h 40, center (20, 40)
    reg = np.float32([[[0.5, 0.25, np.log(2.0), 0.0]]])  # ty, tx, th, tw
    # yc = 0.5*40+40 = 60, xc = 0.25*20+20 = 25, h = 80, w = 20
    np.testing.assert_allclose(decode_boxes(reg, anchors)[0, 0], [15, 20, 35, 100], rtol=1e-6)


def test_flatten_order_levels_then_rows_then_anchor():
    # hand-made maps: value encodes (level, y, x, channel); C = 2 outputs, A = 2 anchors
    maps = []
    for lv, (h, w) in enumerate([(2, 3), (1, 2)]):
        ch = torch.arange(4).reshape(1, 4, 1, 1)
        y = torch.arange(h).reshape(1, 1, h, 1)
        x = torch.arange(w).reshape(1, 1, 1, w)
        maps.append((1000 * lv + 100 * y + 10 * x + ch).float())
    flat = flatten_levels(maps, 2)[0]
    assert flat.shape == (2 * 3 * 2 + 1 * 2 * 2, 2)
    assert flat[0].tolist() == [0, 1]            # P-level 0, y0 x0, anchor 0: channels 0,1
    assert flat[1].tolist() == [2, 3]            # anchor 1: channels 2,3
    assert flat[2].tolist() == [10, 11]          # next x
    assert flat[6].tolist() == [100, 101]        # next row
    assert flat[12].tolist() == [1000, 1001]     # next level


def test_model_rows_line_up_with_anchors():
    model = create_model("d0", image_size=128, num_classes=3)
    with torch.no_grad():
        model.box_net.predict.conv_pw.weight.zero_()
        model.box_net.predict.conv_pw.bias.copy_(torch.arange(36.0))
        cls, box = model(torch.zeros(1, 3, 128, 128))
    anchors = generate_anchors((128, 128), 3, 7, 3, model.config.aspect_ratios, 4.0)
    assert cls.shape == (1, len(anchors), 3) and box.shape == (1, len(anchors), 4)
    a = np.arange(len(anchors)) % 9
    np.testing.assert_array_equal(box[0, :, 0].numpy(), a * 4)  # row n belongs to anchor n % 9 at its cell
