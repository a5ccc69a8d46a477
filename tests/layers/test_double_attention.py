import keras
import numpy as np
import pytest

from kerascv_suite.layers import DoubleAttention
from kerascv_suite.testing import run_layer_test


@pytest.mark.backend
def test_layer_contract():
    run_layer_test(
        DoubleAttention,
        {"c_m": 4, "c_n": 3},
        input_shape=(2, 5, 6, 8),
        expected_output_shape=(2, 5, 6, 8),
        # conv_a, conv_b, conv_v, conv_out: kernel + bias each.
        expected_num_trainable_weights=8,
    )


def _softmax(z, axis):
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


@pytest.mark.backend
def test_matches_numpy_reference():
    rng = np.random.default_rng(3)
    batch, h, w, c, c_m, c_n = 2, 4, 5, 6, 3, 2
    x = rng.normal(size=(batch, h, w, c)).astype("float32")
    layer = DoubleAttention(c_m=c_m, c_n=c_n)
    layer(x)
    params = {}
    for key, out in (("conv_a", c_m), ("conv_b", c_n), ("conv_v", c_n)):
        params[key] = (rng.normal(size=(c, out)), rng.normal(size=out))
    params["conv_out"] = (rng.normal(size=(c_m, c)), rng.normal(size=c))
    for key, (kernel, bias) in params.items():
        layer.block[key].set_weights([kernel[None, None], bias])

    # Chen et al. 2018, Eq. 3-6, per image with X as (N, C), N = h * w positions.
    expected = np.empty_like(x)
    for i in range(batch):
        xi = x[i].reshape(-1, c).astype("float64")
        a = xi @ params["conv_a"][0] + params["conv_a"][1]  # (N, c_m)
        b = _softmax(xi @ params["conv_b"][0] + params["conv_b"][1], axis=0)  # over positions
        v = _softmax(xi @ params["conv_v"][0] + params["conv_v"][1], axis=1)  # over c_n
        g = a.T @ b  # (c_m, c_n) global descriptors
        z = (g @ v.T).T  # (N, c_m) distributed features
        out = xi + z @ params["conv_out"][0] + params["conv_out"][1]
        expected[i] = out.reshape(h, w, c)
    actual = keras.ops.convert_to_numpy(layer(x))
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.backend
def test_unknown_spatial_size():
    inputs = keras.Input((None, None, 8))
    model = keras.Model(inputs, DoubleAttention(reduction=2)(inputs))
    x = np.random.default_rng(0).normal(size=(1, 3, 7, 8)).astype("float32")
    assert model.predict(x, verbose=0).shape == (1, 3, 7, 8)


def test_macs_and_defaults():
    layer = DoubleAttention(reduction=4)
    layer.build((None, 7, 7, 64))
    # c_m = c_n = 64 / 4 = 16. Hand count per image, N = 49 positions: three 1x1 convs
    # 64 -> 16 (3 * 49*64*16), the 1x1 conv 16 -> 64 (49*16*64), gather A^T B (49*16*16) and
    # distribute V G^T (49*16*16).
    assert layer.macs((7, 7, 64)) == 4 * 49 * 64 * 16 + 2 * 49 * 16 * 16
    assert layer.count_params() == 3 * (64 * 16 + 16) + (16 * 64 + 64)
    with pytest.raises(ValueError, match="reduction"):
        DoubleAttention(reduction=0)
