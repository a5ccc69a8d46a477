import keras
import numpy as np
import pytest

from kerascv_suite import models
from kerascv_suite.layers import MaxUnpooling
from kerascv_suite.testing import run_model_test


# Variant-specific checks; every backend runs this model in test_registry.py.
def test_trains_predicts_and_round_trips():
    model = models.build("deconvnet", input_shape=(48, 48, 3), num_classes=4, width=0.0625)
    run_model_test(model, (2, 48, 48, 3), expected_output_shape=(2, 48, 48, 4))


def test_paper_layout_at_224():
    # Noh et al. 2015, Table 1: pool5 7x7x512, fc6 1x1x4096, fc7 1x1x4096, deconv-fc6 7x7x512,
    # unpool5 14x14, ..., unpool1 224x224, output 224x224x21.
    model = models.build("deconvnet", width=0.0625)
    assert model.get_layer("fc6").output.shape[1:3] == (1, 1)
    assert model.get_layer("deconv6").output.shape[1:3] == (7, 7)
    assert model.get_layer("unpool5").output.shape[1:3] == (14, 14)
    assert model.get_layer("unpool1").output.shape[1:3] == (224, 224)
    assert model.output.shape == (None, 224, 224, 21)
    unpools = [layer for layer in model.layers if isinstance(layer, MaxUnpooling)]
    assert len(unpools) == 5


@pytest.mark.backend
def test_small_inputs_switch_fc6_to_same_padding():
    model = models.build("deconvnet", input_shape=(32, 32, 3), width=0.0625, num_classes=2)
    assert model.get_layer("fc6").output.shape[1:3] == (1, 1)
    # predict (one jitted call) rather than an eager call: eager jax compiles every op.
    probabilities = model.predict(np.zeros((1, 32, 32, 3), "float32"), verbose=0)
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-5)


@pytest.mark.backend
def test_fewer_blocks_keep_a_larger_bottleneck():
    # The CPU recipe's variant: 3 blocks on 56x56 leave a 7x7 block3_pool (56 / 2**3), so
    # fc6 (7x7, "valid") gives 1x1 as in the paper and deconv6 maps it back to 7x7 with
    # block 3's channels (256 * 0.0625 = 16), which unpool3 expects.
    model = models.build("deconvnet", input_shape=(56, 56, 3), num_classes=4, width=0.0625,
                         blocks=3)  # fmt: skip
    assert model.get_layer("fc6").output.shape[1:3] == (1, 1)
    assert model.get_layer("deconv6").output.shape[1:] == (7, 7, 16)
    unpools = [layer.name for layer in model.layers if isinstance(layer, MaxUnpooling)]
    assert unpools == ["unpool3", "unpool2", "unpool1"]
    assert model.output.shape == (None, 56, 56, 4)
