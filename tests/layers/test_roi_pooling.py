"""RoIPooling against a loop-by-loop port of the Fast R-CNN Caffe layer."""

import math

import numpy as np
import pytest
from keras import ops

from kerascv_suite.layers import RoIPooling
from kerascv_suite.testing import run_layer_test

pytestmark = pytest.mark.backend


def _c_round(x):
    return math.floor(x + 0.5) if x >= 0 else -math.floor(-x + 0.5)


def numpy_roi_pool(features, rois, pooled, scale):
    """rbgirshick/caffe-fast-rcnn roi_pooling_layer.cpp Forward_cpu, written out (bin edges
    in exact integer arithmetic: floor(p * n / P), ceil((p + 1) * n / P))."""
    batch, height, width, channels = features.shape
    out = np.zeros((batch, rois.shape[1], pooled, pooled, channels), features.dtype)
    for b in range(batch):
        for r in range(rois.shape[1]):
            x1, y1, x2, y2 = (_c_round(v * scale) for v in rois[b, r])
            roi_h, roi_w = max(y2 - y1 + 1, 1), max(x2 - x1 + 1, 1)
            for ph in range(pooled):
                hs = min(max((ph * roi_h) // pooled + y1, 0), height)
                he = min(max(-((-(ph + 1) * roi_h) // pooled) + y1, 0), height)
                for pw in range(pooled):
                    ws = min(max((pw * roi_w) // pooled + x1, 0), width)
                    we = min(max(-((-(pw + 1) * roi_w) // pooled) + x1, 0), width)
                    if he > hs and we > ws:
                        out[b, r, ph, pw] = features[b, hs:he, ws:we].max(axis=(0, 1))
    return out


def test_layer_contract():
    run_layer_test(RoIPooling, {"pool_size": 2, "spatial_scale": 6.0},
                   input_shape=[(2, 6, 6, 3), (2, 4, 4)], expected_output_shape=(2, 4, 2, 2, 3),
                   expected_num_trainable_weights=0, run_training=False)


@pytest.mark.parametrize("seed", range(3))
def test_matches_caffe_reference(seed):
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(2, 12, 15, 4)).astype("float32")
    # RoIs in pixels of a 16x-strided 192 x 240 image, some partly outside, some tiny.
    xy = rng.uniform(-40, 230, (2, 9, 2))
    rois = np.concatenate([xy, xy + rng.uniform(1, 150, (2, 9, 2))], -1).astype("float32")
    rois[0, 0] = [0, 0, 239, 191]  # the whole image
    rois[1, 0] = [300, 300, 400, 400]  # entirely outside: all bins empty -> 0
    out = ops.convert_to_numpy(RoIPooling(7, 1 / 16)([features, rois]))
    np.testing.assert_allclose(out, numpy_roi_pool(features, rois, 7, 1 / 16), rtol=1e-6)
    assert np.all(out[1, 0] == 0)


def test_hand_case():
    # A 4x4 map 0..15 and the RoI covering it whole, 2x2 bins: maxima of the quadrants.
    features = np.arange(16, dtype="float32").reshape(1, 4, 4, 1)
    out = RoIPooling(2, 1.0)([features, np.array([[[0, 0, 3, 3]]], "float32")])
    np.testing.assert_array_equal(ops.convert_to_numpy(out)[0, 0, :, :, 0], [[5, 7], [13, 15]])


def _gradient(fn, x):
    """d sum(fn(x)) / dx on the current backend."""
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        x = tf.Variable(x)
        with tf.GradientTape() as tape:
            y = tf.reduce_sum(fn(x))
        return tape.gradient(y, x).numpy()
    if backend == "jax":
        import jax

        return np.asarray(jax.jit(jax.grad(lambda v: fn(v).sum()))(x))
    import torch

    x = torch.tensor(x, requires_grad=True)
    fn(x).sum().backward()
    return x.grad.numpy()


def test_gradient_reaches_exactly_each_bins_maximum():
    # Fast R-CNN sec. 2.3: d L / d x_i = sum over the bins whose argmax is cell i of the
    # bin's upstream gradient. Random upstream weights per bin; distinct features (no ties).
    rng = np.random.default_rng(3)
    features = (1 + rng.permutation(2 * 9 * 11 * 3)).reshape(2, 9, 11, 3).astype("float32")
    xy = rng.uniform(-20, 150, (2, 5, 2))
    rois = np.concatenate([xy, xy + rng.uniform(1, 120, (2, 5, 2))], -1).astype("float32")
    upstream = rng.uniform(0.5, 2.0, (2, 5, 3, 3, 3)).astype("float32")
    layer = RoIPooling(3, 1 / 16)
    grad = _gradient(lambda f: ops.multiply(layer([f, ops.convert_to_tensor(rois)]),
                                            ops.convert_to_tensor(upstream)), features)
    expected = np.zeros_like(features)
    pooled = numpy_roi_pool(features, rois, 3, 1 / 16)
    for b, r, i, j, c in zip(*np.nonzero(pooled)):
        h, w = np.argwhere(features[b, :, :, c] == pooled[b, r, i, j, c])[0]
        expected[b, h, w, c] += upstream[b, r, i, j, c]
    np.testing.assert_allclose(grad, expected, rtol=1e-6)
