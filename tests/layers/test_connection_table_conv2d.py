import keras
import numpy as np
import pytest
from keras.ops import convert_to_numpy as to_numpy

from kerascv_suite.layers import ConnectionTableConv2D
from kerascv_suite.testing import run_layer_test

TABLE = [[0, 1], [1, 2], [0, 2], [0, 1, 2]]


@pytest.mark.backend
def test_layer_contract():
    layer = run_layer_test(
        ConnectionTableConv2D,
        {"table": TABLE, "kernel_size": 3},
        input_shape=(2, 6, 6, 3),
        expected_output_shape=(2, 4, 4, 4),
        expected_num_trainable_weights=2,
    )
    # Only the 9 connections have kernels: 9 * 3 * 3 + 4 biases.
    assert layer.count_params() == 9 * 9 + 4


@pytest.mark.backend
def test_full_table_equals_conv2d():
    x = np.random.default_rng(0).normal(size=(2, 7, 7, 3)).astype("float32")
    full = ConnectionTableConv2D([[0, 1, 2]] * 4, 3, padding="same")
    y = full(x)
    conv = keras.layers.Conv2D(4, 3, padding="same")
    conv.build(x.shape)
    conv.set_weights([keras.ops.convert_to_numpy(full.dense_kernel()), full.get_weights()[1]])
    np.testing.assert_allclose(to_numpy(y), to_numpy(conv(x)), rtol=1e-5, atol=1e-5)


@pytest.mark.backend
def test_output_maps_ignore_unconnected_inputs():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(1, 6, 6, 3)).astype("float32")
    layer = ConnectionTableConv2D(TABLE, 3)
    before = to_numpy(layer(x))
    x_changed = x.copy()
    x_changed[..., 2] += rng.normal(size=(1, 6, 6)).astype("float32")
    after = to_numpy(layer(x_changed))
    # Map 0 sees inputs 0 and 1 only; the others see input 2.
    np.testing.assert_array_equal(before[..., 0], after[..., 0])
    assert not np.allclose(before[..., 1:], after[..., 1:])


def test_macs():
    # 4x4 outputs, 9 connected 3x3 kernels.
    assert ConnectionTableConv2D(TABLE, 3).macs((6, 6, 3)) == 4 * 4 * 9 * 9


@pytest.mark.parametrize("table", [[], [[0], []], [[0, 0]]])
def test_rejects_bad_tables(table):
    with pytest.raises(ValueError, match="Received"):
        ConnectionTableConv2D(table, 3)


def test_rejects_table_beyond_input_channels():
    with pytest.raises(ValueError, match="input channel 3"):
        ConnectionTableConv2D([[0, 3]], 3)(np.zeros((1, 5, 5, 3), "float32"))
