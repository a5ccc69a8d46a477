import keras
import numpy as np
import pytest

from kerascv_suite.layers import L2Normalization
from kerascv_suite.testing import run_layer_test


@pytest.mark.backend
def test_l2_normalization_layer():
    run_layer_test(L2Normalization, {"scale": 20.0}, (2, 3, 3, 4),
                   expected_output_shape=(2, 3, 3, 4), expected_num_trainable_weights=1)


@pytest.mark.backend
def test_l2_normalization_values():
    # (3, 4) has norm 5: the unit vector (0.6, 0.8) times the initial scale 20 (SSD, sec. 3.1).
    layer = L2Normalization()
    out = keras.ops.convert_to_numpy(layer(np.array([[[[3.0, 4.0]]]], "float32")))
    np.testing.assert_allclose(out, [[[[12.0, 16.0]]]], rtol=1e-6)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer.gamma), [20.0, 20.0])
