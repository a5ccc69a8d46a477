import keras
import numpy as np
import pytest

from kerascv_suite import models
from kerascv_suite.models.segmentation import decode_heatmaps
from kerascv_suite.testing import run_model_test


# Variant-specific checks; every backend runs this model in test_registry.py.
def test_trains_with_intermediate_supervision():
    # Three stacks, each output supervised (MSE on every heatmap output), at the smallest
    # size: one level per hourglass on 16x16 inputs. The recursive levels (depth 2) train on
    # every backend in tests/models/test_registry.py (the registered test size, 2 stacks).
    model = models.build("hourglass", input_shape=(16, 16, 3), num_classes=3, num_stacks=3,
                         filters=8, depth=1)  # fmt: skip
    expected = {f"heatmaps_{i}": (2, 4, 4, 3) for i in (1, 2, 3)}
    run_model_test(model, (2, 16, 16, 3), expected_output_shape=expected)


def test_paper_configuration_shapes():
    # Newell et al. 2016, section 3: 256x256 input, 64x64 heatmaps, 8 stacks of depth 4.
    model = models.build("hourglass", num_stacks=8)
    assert sorted(model.output) == sorted(f"heatmaps_{i}" for i in range(1, 9))
    assert model.output["heatmaps_8"].shape == (None, 64, 64, 16)
    assert model.get_layer("stack1_hg_pool1").output.shape[1:3] == (4, 4)


@pytest.mark.backend
def test_decode_heatmaps_argmax_and_quarter_pixel_shift():
    heatmaps = np.zeros((2, 8, 10, 2), "float32")
    heatmaps[0, 3, 4, 0] = 1.0
    heatmaps[0, 3, 5, 0] = 0.5  # right neighbour higher -> x + 0.25
    heatmaps[0, 2, 4, 0] = 0.2  # upper neighbour higher -> y - 0.25
    heatmaps[0, 7, 0, 1] = 2.0  # corner: no shift outwards
    heatmaps[1, 5, 6, 0] = 1.0
    heatmaps[1, 1, 1, 1] = 3.0
    coords, scores = decode_heatmaps(heatmaps)
    coords, scores = keras.ops.convert_to_numpy(coords), keras.ops.convert_to_numpy(scores)
    np.testing.assert_allclose(coords[0], [[4.25, 2.75], [0.0, 7.0]])
    np.testing.assert_allclose(coords[1], [[6.0, 5.0], [1.0, 1.0]])
    np.testing.assert_allclose(scores, [[1.0, 2.0], [1.0, 3.0]])
    scaled, _ = decode_heatmaps(heatmaps, stride=4)
    # Pixel centres align: heatmap x -> (x + 0.5) * 4 - 0.5.
    np.testing.assert_allclose(keras.ops.convert_to_numpy(scaled)[1, 0], [25.5, 21.5])


def test_rejects_bad_stacks():
    with pytest.raises(ValueError, match="num_stacks"):
        models.build("hourglass", num_stacks=0)
