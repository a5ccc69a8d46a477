"""RoIAlign against a loop-by-loop port of torchvision's roi_align CPU kernel, and against
torchvision.ops.roi_align itself at Mask R-CNN's 14x14 (He et al., 2017: sampling ratio 2)."""

import math

import numpy as np
import pytest
from keras import ops

from kerascv_suite.layers import RoIAlign
from kerascv_suite.testing import run_layer_test

pytestmark = pytest.mark.backend


def _bilinear(fmap, y, x):
    height, width = fmap.shape[:2]
    if y < -1.0 or y > height or x < -1.0 or x > width:
        return np.zeros(fmap.shape[-1])
    y, x = max(y, 0.0), max(x, 0.0)
    y_low, x_low = int(y), int(x)
    if y_low >= height - 1:
        y_high = y_low = height - 1
        y = float(y_low)
    else:
        y_high = y_low + 1
    if x_low >= width - 1:
        x_high = x_low = width - 1
        x = float(x_low)
    else:
        x_high = x_low + 1
    ly, lx = y - y_low, x - x_low
    hy, hx = 1 - ly, 1 - lx
    return (hy * hx * fmap[y_low, x_low] + hy * lx * fmap[y_low, x_high]
            + ly * hx * fmap[y_high, x_low] + ly * lx * fmap[y_high, x_high])


def numpy_roi_align(features, rois, pooled, scale, sampling_ratio, aligned):
    """torchvision/csrc/ops/cpu/roi_align_kernel.cpp, one sample at a time."""
    batch, _, _, channels = features.shape
    out = np.zeros((batch, rois.shape[1], pooled, pooled, channels))
    offset = 0.5 if aligned else 0.0
    for b in range(batch):
        for r in range(rois.shape[1]):
            x1, y1, x2, y2 = (float(v) * scale - offset for v in rois[b, r])
            roi_w, roi_h = x2 - x1, y2 - y1
            if not aligned:
                roi_w, roi_h = max(roi_w, 1.0), max(roi_h, 1.0)
            bin_h, bin_w = roi_h / pooled, roi_w / pooled
            g = sampling_ratio
            for ph in range(pooled):
                for pw in range(pooled):
                    acc = np.zeros(channels)
                    for iy in range(g):
                        y = y1 + ph * bin_h + (iy + 0.5) * bin_h / g
                        for ix in range(g):
                            x = x1 + pw * bin_w + (ix + 0.5) * bin_w / g
                            acc += _bilinear(features[b], y, x)
                    out[b, r, ph, pw] = acc / (g * g)
    return out


def test_layer_contract():
    run_layer_test(RoIAlign, {"pool_size": (2, 3), "spatial_scale": 6.0, "sampling_ratio": 2},
                   input_shape=[(2, 6, 6, 3), (2, 4, 4)], expected_output_shape=(2, 4, 2, 3, 3),
                   expected_num_trainable_weights=0)


@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [1, 2])
def test_matches_torchvision_kernel(aligned, sampling_ratio):
    rng = np.random.default_rng(sampling_ratio)
    features = rng.normal(size=(2, 10, 13, 3)).astype("float32")
    xy = rng.uniform(-30, 200, (2, 8, 2))
    rois = np.concatenate([xy, xy + rng.uniform(0.5, 120, (2, 8, 2))], -1).astype("float32")
    rois[0, 0] = [0, 0, 207, 159]
    rois[1, 0] = [190, 150, 260, 230]  # runs off the bottom-right border
    layer = RoIAlign(5, 1 / 16, sampling_ratio=sampling_ratio, aligned=aligned)
    out = ops.convert_to_numpy(layer([features, rois]))
    expected = numpy_roi_align(features, rois, 5, 1 / 16, sampling_ratio, aligned)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)


def test_constant_map_gives_constant_bins_inside():
    # Bilinear averages of a constant are that constant wherever all samples fall inside.
    features = np.full((1, 8, 8, 2), 3.0, "float32")
    out = RoIAlign(4, 1.0, sampling_ratio=2)([features, np.array([[[1, 1, 6, 6]]], "float32")])
    np.testing.assert_allclose(ops.convert_to_numpy(out), 3.0, rtol=1e-6)
    assert math.isclose(float(ops.convert_to_numpy(out).mean()), 3.0, rel_tol=1e-6)


@pytest.mark.parametrize("aligned", [False, True])
def test_mask_rcnn_14x14_matches_torchvision_roi_align(aligned, torchvision):
    import torch

    rng = np.random.default_rng(14)
    features = rng.normal(size=(2, 25, 38, 4)).astype("float32")  # a 400x600 image at 1/16
    xy = rng.uniform(-40, 560, (2, 6, 2))
    rois = np.concatenate([xy, xy + rng.uniform(0.3, 300, (2, 6, 2))], -1).astype("float32")
    rois[0, 0] = [0, 0, 600, 400]
    rois[1, 0] = [580, 380, 700, 470]  # off the bottom-right border
    rois[1, 1] = [100, 100, 100.5, 100.5]  # under one cell
    out = ops.convert_to_numpy(
        RoIAlign(14, 1 / 16, sampling_ratio=2, aligned=aligned)([features, rois]))
    boxes = torch.cat([torch.arange(2).repeat_interleave(6)[:, None].float(),
                       torch.from_numpy(rois.reshape(-1, 4))], 1)
    expected = torchvision.ops.roi_align(
        torch.from_numpy(features).permute(0, 3, 1, 2), boxes, output_size=14,
        spatial_scale=1 / 16, sampling_ratio=2, aligned=aligned)
    expected = expected.permute(0, 2, 3, 1).reshape(2, 6, 14, 14, 4).numpy()
    assert out.shape == (2, 6, 14, 14, 4)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)
