import keras
import numpy as np
import pytest

from kerascv_suite.layers import MaxPoolingWithArgmax
from kerascv_suite.testing import run_layer_test


@pytest.mark.backend
def test_layer_contract():
    run_layer_test(
        MaxPoolingWithArgmax,
        {"pool_size": 2},
        input_shape=(2, 6, 4, 3),
        expected_output_shape=((2, 3, 2, 3), (2, 3, 2, 3)),
        expected_num_trainable_weights=0,
        run_training=False,
    )


def _numpy_reference(x, ph, pw):
    """Loop over windows; flat index (y * W + x) * C + c as tf.nn.max_pool_with_argmax."""
    batch, height, width, channels = x.shape
    out_h, out_w = height // ph, width // pw
    pooled = np.zeros((batch, out_h, out_w, channels), x.dtype)
    index = np.zeros(pooled.shape, np.int64)
    for b, i, j, c in np.ndindex(pooled.shape):
        window = x[b, i * ph : (i + 1) * ph, j * pw : (j + 1) * pw, c]
        dy, dx = np.unravel_index(np.argmax(window), window.shape)
        pooled[b, i, j, c] = window[dy, dx]
        index[b, i, j, c] = ((i * ph + dy) * width + j * pw + dx) * channels + c
    return pooled, index


@pytest.mark.backend
@pytest.mark.parametrize("pool_size", [2, (3, 2)])
def test_matches_loop_reference(pool_size):
    x = np.random.default_rng(3).normal(size=(2, 7, 9, 4)).astype("float32")
    ph, pw = (pool_size, pool_size) if isinstance(pool_size, int) else pool_size
    pooled, index = MaxPoolingWithArgmax(pool_size)(x)
    expected_pooled, expected_index = _numpy_reference(x, ph, pw)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(pooled), expected_pooled)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(index), expected_index)


@pytest.mark.backend
def test_same_padding_rounds_up_and_ignores_padding():
    x = -np.arange(2 * 5 * 5 * 1, dtype="float32").reshape(2, 5, 5, 1) - 1.0
    pooled, index = MaxPoolingWithArgmax(2, padding="same")(x)
    pooled, index = keras.ops.convert_to_numpy(pooled), keras.ops.convert_to_numpy(index)
    assert pooled.shape == (2, 3, 3, 1)
    # All values are negative, so a padded cell would win if padding were not -inf.
    np.testing.assert_allclose(pooled, np.take_along_axis(x.reshape(2, -1), index.reshape(2, -1), 1).reshape(pooled.shape))
    assert index.max() < 25


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="padding"):
        MaxPoolingWithArgmax(2, padding="full")
    with pytest.raises(ValueError, match="pool_size"):
        MaxPoolingWithArgmax(0)
