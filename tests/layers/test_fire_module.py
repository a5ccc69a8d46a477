import keras
import numpy as np
import pytest

from kerascv_suite.layers import FireModule
from kerascv_suite.layers.fire_module import apply_fire_module, fire_module_layers
from kerascv_suite.testing import run_layer_test


@pytest.mark.backend
def test_layer_contract():
    run_layer_test(
        FireModule,
        {"squeeze": 2, "expand1x1": 3, "expand3x3": 5},
        input_shape=(2, 6, 6, 4),
        expected_output_shape=(2, 6, 6, 8),
        expected_num_trainable_weights=6,
    )


@pytest.mark.backend
def test_layer_equals_flat_block():
    # The layer and the builders' flat graph come from the same two functions.
    x = np.random.default_rng(0).uniform(size=(1, 5, 5, 4)).astype("float32")
    layer = FireModule(2, 3, 5, name="fire2")
    expected = keras.ops.convert_to_numpy(layer(x))
    inputs = keras.Input((5, 5, 4))
    flat = fire_module_layers(2, 3, 5, name="fire2")
    model = keras.Model(inputs, apply_fire_module(flat, inputs))
    for key, sub in layer.block.items():
        flat[key].set_weights(sub.get_weights())
    assert model.get_layer("fire2_expand3x3") is flat["expand3x3"]
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.backend
def test_concatenates_expand1x1_then_expand3x3():
    x = np.random.default_rng(0).uniform(size=(1, 5, 5, 4)).astype("float32")
    layer = FireModule(2, 3, 5)
    layer(x)
    kernel, _ = layer.block["expand3x3"].get_weights()
    layer.block["expand3x3"].set_weights([np.zeros_like(kernel), -np.ones(5)])
    y = keras.ops.convert_to_numpy(layer(x))
    assert np.all(y[..., 3:] == 0.0)  # relu(-1) from the silenced 3x3 branch
    assert np.all(y >= 0.0)


def test_parameter_count_matches_torchvision_fire():
    layer = FireModule(16, 64, 64)
    layer.build((None, 54, 54, 96))
    # torchvision Fire(96, 16, 64, 64), by hand: (96*16 + 16) + (16*64 + 64) + (9*16*64 + 64)
    # = 1,552 + 1,088 + 9,280 = 11,920.
    assert layer.count_params() == 11920
    # Same-size 54x54 outputs: 54*54*(96*16 + 16*64 + 9*16*64).
    assert layer.macs((54, 54, 96)) == 54 * 54 * (96 * 16 + 16 * 64 + 9 * 16 * 64)
