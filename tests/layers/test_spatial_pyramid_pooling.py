"""SpatialPyramidPooling against the paper's window/stride rule and adaptive bins."""

import math

import keras
import numpy as np
import pytest
from keras import ops

from kerascv_suite.layers import SpatialPyramidPooling
from kerascv_suite.testing import run_layer_test

pytestmark = pytest.mark.backend


def numpy_spp_paper(x, bins):
    """He et al. 2014 sec 2.3: on an a x a map, level n pools windows ceil(a/n), strides
    floor(a/n)."""
    a = x.shape[1]
    out = []
    for n in bins:
        win, stride = math.ceil(a / n), math.floor(a / n)
        level = np.stack([np.stack([x[:, i * stride:i * stride + win, j * stride:j * stride + win]
                                    .max(axis=(1, 2)) for j in range(n)], 1) for i in range(n)], 1)
        out.append(level.reshape(len(x), -1))
    return np.concatenate(out, -1)


def numpy_spp_adaptive(x, bins):
    h, w = x.shape[1:3]
    out = []
    for n in bins:
        level = np.zeros((len(x), n, n, x.shape[-1]), x.dtype)
        for i in range(n):
            for j in range(n):
                hs, he = (i * h) // n, -((-(i + 1) * h) // n)
                ws, we = (j * w) // n, -((-(j + 1) * w) // n)
                level[:, i, j] = x[:, hs:he, ws:we].max(axis=(1, 2))
        out.append(level.reshape(len(x), -1))
    return np.concatenate(out, -1)


def test_layer_contract():
    # 4x4 + 2x2 + 1x1 = 21 bins per channel (paper, Fig. 3).
    run_layer_test(SpatialPyramidPooling, {"bins": (4, 2, 1)}, input_shape=(2, 8, 8, 3),
                   expected_output_shape=(2, 63), expected_num_trainable_weights=0,
                   run_training=False)


def test_matches_paper_windows_on_13x13_conv5():
    # The paper's ZF-5 / Overfeat conv5 at 224 x 224 input is 13 x 13 (sec 2.3).
    x = np.random.default_rng(0).normal(size=(2, 13, 13, 5)).astype("float32")
    out = ops.convert_to_numpy(SpatialPyramidPooling((4, 2, 1))(x))
    np.testing.assert_array_equal(out, numpy_spp_paper(x, (4, 2, 1)))


@pytest.mark.parametrize("shape", [(7, 10), (3, 3), (16, 5)])
def test_any_size_gives_fixed_length(shape):
    x = np.random.default_rng(1).normal(size=(2, *shape, 4)).astype("float32")
    out = ops.convert_to_numpy(SpatialPyramidPooling((4, 2, 1))(x))
    assert out.shape == (2, 21 * 4)
    np.testing.assert_array_equal(out, numpy_spp_adaptive(x, (4, 2, 1)))


def test_variable_size_inputs_in_one_model():
    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, SpatialPyramidPooling((2, 1))(inputs))
    for size in (6, 9):
        x = np.random.default_rng(size).normal(size=(1, size, size, 3)).astype("float32")
        np.testing.assert_allclose(model.predict(x, verbose=0), numpy_spp_adaptive(x, (2, 1)))
