import keras
import numpy as np
import pytest

from kerascv_suite import models
from kerascv_suite.testing import run_model_test


# Variant-specific checks; every backend runs this model in test_registry.py.
def test_trains_predicts_and_round_trips():
    # 44x52: poolings round up (22x26 ... 2x2) and unpooling returns the exact sizes.
    model = models.build("segnet", input_shape=(44, 52, 3), num_classes=5, width=0.0625)
    run_model_test(model, (2, 44, 52, 3), expected_output_shape=(2, 44, 52, 5))


def test_encoder_is_vgg16s_13_convolutions():
    model = models.build("segnet")
    convs = [layer for layer in model.layers if layer.name.startswith("block")
             and isinstance(layer, keras.layers.Conv2D)]  # fmt: skip
    assert len(convs) == 13
    # Badrinarayanan et al. 2017, section 3: the encoder has 14.7M parameters (VGG16's
    # 13 convolutions; keras.applications VGG16(include_top=False) has 14,714,688).
    assert sum(layer.count_params() for layer in convs) == 14_714_688
    # Decoder upsamples with the encoder's indices: one unpooling per encoder pooling.
    assert [model.get_layer(f"upsample{b}").output.shape[1:3] for b in (5, 1)] == [
        (23, 30), (360, 480)]  # fmt: skip


@pytest.mark.backend
def test_unpooling_uses_the_encoder_switches():
    # Two blocks: upsample1 gets decoder features from below block 2 and must place them with
    # block 1's switches (a mispairing of encoder and decoder stages fails). One jitted
    # predict: on jax an eager call compiles every op separately.
    model = models.build("segnet", input_shape=(32, 32, 3), num_classes=2, width=0.0625,
                         blocks=2)  # fmt: skip
    probe = keras.Model(model.input, [model.get_layer("block1_conv2_relu").output,
                                      model.get_layer("upsample1").output])  # fmt: skip
    x = np.random.default_rng(0).uniform(0, 255, (1, 32, 32, 3)).astype("float32")
    features, upsampled = probe.predict(x, verbose=0)
    # Exactly one non-zero per 2x2 window and channel, at the window's maximum.
    nonzero = (upsampled != 0).reshape(1, 16, 2, 16, 2, -1).sum(axis=(2, 4))
    assert nonzero.max() <= 1
    windows = features.reshape(1, 16, 2, 16, 2, -1).transpose(0, 1, 3, 5, 2, 4).reshape(1, 16, 16, -1, 4)
    where = (upsampled != 0).reshape(1, 16, 2, 16, 2, -1).transpose(0, 1, 3, 5, 2, 4).reshape(1, 16, 16, -1, 4)
    hit = where.any(-1)
    assert np.array_equal(where.argmax(-1)[hit], windows.argmax(-1)[hit])


@pytest.mark.backend
def test_fewer_blocks_keep_a_larger_bottleneck():
    # The CPU recipe's variant: 3 encoder blocks leave 32 / 2**3 = 4x4 (8x8 on the recipe's
    # 64x64) instead of 1x1 after the paper's 5, and the decoder mirrors only those 3.
    model = models.build("segnet", input_shape=(32, 32, 3), num_classes=4, width=0.0625,
                         blocks=3)  # fmt: skip
    assert model.get_layer("block3_pool").output[0].shape[1:3] == (4, 4)
    names = {layer.name for layer in model.layers}
    assert "block4_conv1" not in names and "upsample4" not in names
    assert model.get_layer("upsample3").output.shape[1:3] == (8, 8)
    assert model.output.shape == (None, 32, 32, 4)
    with pytest.raises(ValueError, match="blocks"):
        models.build("segnet", input_shape=(32, 32, 3), blocks=6)
