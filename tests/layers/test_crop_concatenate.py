import keras
import numpy as np
import pytest

from kerascv_suite.layers import CropConcatenate
from kerascv_suite.testing import run_layer_test


@pytest.mark.backend
def test_layer_contract():
    run_layer_test(
        CropConcatenate,
        {},
        input_shape=[(2, 4, 4, 3), (2, 8, 8, 2)],
        expected_output_shape=(2, 4, 4, 5),
        run_training=False,
    )


@pytest.mark.backend
def test_crops_the_centre():
    # U-Net (Ronneberger et al. 2015, Fig. 1): 64x64 skip cropped to the 56x56 up-conv output.
    skip = np.arange(64 * 64, dtype="float32").reshape(1, 64, 64, 1)
    up = np.zeros((1, 56, 56, 2), "float32")
    y = keras.ops.convert_to_numpy(CropConcatenate()([up, skip]))
    assert y.shape == (1, 56, 56, 3)
    np.testing.assert_array_equal(y[..., 0], skip[:, 4:60, 4:60, 0])
    np.testing.assert_array_equal(y[..., 1:], 0.0)


@pytest.mark.backend
def test_odd_difference_drops_bottom_right():
    skip = np.arange(5 * 5, dtype="float32").reshape(1, 5, 5, 1)
    y = keras.ops.convert_to_numpy(CropConcatenate()([np.zeros((1, 2, 2, 1), "float32"), skip]))
    np.testing.assert_array_equal(y[0, :, :, 0], skip[0, 1:3, 1:3, 0])


def test_rejects_a_smaller_skip():
    with pytest.raises(ValueError, match="at least as large"):
        CropConcatenate()([keras.Input((8, 8, 1)), keras.Input((4, 4, 1))])
