import numpy as np
import pytest

from kerascv_suite import models
from kerascv_suite.testing import run_model_test


def test_paper_shape_and_parameter_count():
    model = models.build("unet_paper")
    # Ronneberger et al. 2015, Fig. 1: a 572x572 tile gives a 388x388 map of 2 classes.
    assert model.input.shape == (None, 572, 572, 1)
    assert model.output.shape == (None, 388, 388, 2)
    # 31,030,658 by hand (see the calculation in kerascv_suite/models/segmentation/unet.py:
    # contracting 18,842,048 + expansive 12,188,480 + 1x1 score 130).
    assert model.count_params() == 31_030_658
    # Fig. 1's intermediate sizes: 568 -> 284 -> 280 ... bottleneck 28 -> 56 after up-conv.
    assert model.get_layer("block1_conv2").output.shape[1:] == (568, 568, 64)
    assert model.get_layer("block5_conv2").output.shape[1:] == (28, 28, 1024)
    assert model.get_layer("up4_upconv").output.shape[1:] == (56, 56, 512)
    assert model.get_layer("up4_concat").output.shape[1:] == (56, 56, 1024)


# Variant-specific checks; every backend runs this model in test_registry.py.
def test_paper_form_trains_at_its_smallest_size():
    model = models.build("unet_paper", input_shape=(188, 188, 1), num_classes=3, width=0.0625)
    run_model_test(model, (2, 188, 188, 1), expected_output_shape=(2, 4, 4, 3))


# Variant-specific checks; every backend runs this model in test_registry.py.
@pytest.mark.parametrize("batch_norm", [False, True])
def test_same_form_keeps_the_input_size(batch_norm):
    model = models.build("unet", input_shape=(48, 64, 3), num_classes=4, width=0.0625,
                         batch_norm=batch_norm)  # fmt: skip
    restored = run_model_test(model, (2, 48, 64, 3), expected_output_shape=(2, 48, 64, 4))
    probabilities = np.asarray(restored.predict(np.zeros((1, 48, 64, 3)), verbose=0))
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-5)


def test_rejects_bad_padding():
    with pytest.raises(ValueError, match="padding"):
        models.build("unet", padding="full")
