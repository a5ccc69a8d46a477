"""AdaptiveAveragePooling: torch's AdaptiveAvgPool2d windows, in eager and compiled calls."""

import keras
import numpy as np
import pytest

from kerascv_suite.layers.adaptive_average_pooling import AdaptiveAveragePooling


def torch_windows_average(x, out_h, out_w):
    """numpy reference of torch's adaptive average pooling: output (i, j) averages rows
    floor(i H / h) .. ceil((i + 1) H / h) - 1 and the same for columns
    (aten/src/ATen/native/AdaptiveAveragePooling.cpp, start_index / end_index)."""
    b, h, w, c = x.shape
    out = np.zeros((b, out_h, out_w, c), np.float64)
    for i in range(out_h):
        r0, r1 = (i * h) // out_h, -((-(i + 1) * h) // out_h)
        for j in range(out_w):
            c0, c1 = (j * w) // out_w, -((-(j + 1) * w) // out_w)
            out[:, i, j] = x[:, r0:r1, c0:c1].mean(axis=(1, 2))
    return out


@pytest.mark.backend
@pytest.mark.parametrize("size, output", [((13, 13), (6, 6)), ((1, 1), (6, 6)),
                                          ((5, 7), (6, 3)), ((6, 6), (6, 6))])
def test_matches_torch_windows_in_a_compiled_model(size, output):
    x = np.random.default_rng(0).normal(size=(2, *size, 3)).astype("float32")
    inputs = keras.Input((*size, 3))
    model = keras.Model(inputs, AdaptiveAveragePooling(output)(inputs))
    # predict() compiles the graph: keras' AdaptiveAveragePooling2D (3.15) fails there on
    # inputs smaller than the output under tensorflow.
    ours = model.predict(x, verbose=0)
    assert ours.shape == (2, *output, 3)
    np.testing.assert_allclose(ours, torch_windows_average(x, *output), rtol=1e-5, atol=1e-6)
    if size == output:
        np.testing.assert_allclose(ours, x, rtol=1e-6)


def test_config_round_trip_and_bad_sizes():
    layer = AdaptiveAveragePooling(6, name="avgpool")
    assert layer.output_size == (6, 6)
    assert AdaptiveAveragePooling.from_config(layer.get_config()).output_size == (6, 6)
    assert layer.compute_output_shape((None, 13, 13, 256)) == (None, 6, 6, 256)
    with pytest.raises(ValueError, match="output_size must be"):
        AdaptiveAveragePooling((6, 0))
