import keras
import numpy as np
import pytest

from kerascv_suite.layers import SqueezeExcite
from kerascv_suite.testing import run_layer_test


@pytest.mark.backend
def test_layer_contract():
    run_layer_test(
        SqueezeExcite,
        {"ratio": 4},
        input_shape=(2, 5, 5, 8),
        expected_output_shape=(2, 5, 5, 8),
        # reduce and expand convolutions, kernel + bias each.
        expected_num_trainable_weights=4,
    )


@pytest.mark.backend
def test_matches_numpy_reference():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 4, 3, 8)).astype("float32")
    layer = SqueezeExcite(ratio=4)
    layer(x)
    w1, b1 = rng.normal(size=(8, 2)), rng.normal(size=2)
    w2, b2 = rng.normal(size=(2, 8)), rng.normal(size=8)
    layer.block["reduce"].set_weights([w1.reshape(1, 1, 8, 2), b1])
    layer.block["expand"].set_weights([w2.reshape(1, 1, 2, 8), b2])
    # Hu et al. 2018, Eq. 2-4: s = sigmoid(W2 relu(W1 z)), z = mean over positions.
    z = x.mean(axis=(1, 2))
    s = 1.0 / (1.0 + np.exp(-(np.maximum(z @ w1 + b1, 0.0) @ w2 + b2)))
    expected = x * s[:, None, None, :]
    actual = keras.ops.convert_to_numpy(layer(x))
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)


def test_parameter_count_and_macs():
    layer = SqueezeExcite(ratio=16)
    layer.build((None, 7, 7, 256))
    # Hand count, C = 256, C/r = 16: (256*16 + 16) + (16*256 + 256) = 8,464.
    assert layer.count_params() == 8464
    # 256*16 + 16*256 multiply-adds on the pooled vector.
    assert layer.macs((7, 7, 256)) == 8192


def test_rejects_bad_ratio():
    with pytest.raises(ValueError, match="ratio"):
        SqueezeExcite(ratio=0)
