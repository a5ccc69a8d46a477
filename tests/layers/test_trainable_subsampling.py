import numpy as np
import pytest
from keras.ops import convert_to_numpy as to_numpy

from kerascv_suite.layers import TrainableSubsampling
from kerascv_suite.testing import run_layer_test


@pytest.mark.backend
def test_layer_contract():
    layer = run_layer_test(
        TrainableSubsampling,
        {"pool_size": 2},
        input_shape=(2, 6, 6, 3),
        expected_output_shape=(2, 3, 3, 3),
        expected_num_trainable_weights=2,
    )
    # A coefficient and a bias per map (LeCun et al. 1998, S2: 6 maps, 12 parameters).
    assert layer.count_params() == 2 * 3


@pytest.mark.backend
def test_matches_numpy_reference():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 4, 6, 3)).astype("float32")
    layer = TrainableSubsampling(2)
    layer.build(x.shape)
    coefficient, bias = np.array([0.5, -2.0, 3.0], "float32"), np.array([1.0, 0.0, -1.0], "float32")
    layer.set_weights([coefficient, bias])
    averages = x.reshape(2, 2, 2, 3, 2, 3).mean(axis=(2, 4))
    np.testing.assert_allclose(
        to_numpy(layer(x)), averages * coefficient + bias, rtol=1e-5, atol=1e-6
    )


def test_macs():
    assert TrainableSubsampling(2).macs((28, 28, 6)) == 14 * 14 * 6
