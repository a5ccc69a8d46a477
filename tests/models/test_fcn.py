import keras
import numpy as np
import pytest

from kerascv_suite import models
from kerascv_suite.testing import run_model_test


# Variant-specific checks; every backend runs this model in test_registry.py.
@pytest.mark.parametrize("variant", ["32s", "16s", "8s"])
def test_trains_predicts_and_round_trips(variant):
    # 40x40 is not a multiple of 32: poolings round up and the output is cropped back.
    model = models.build(f"fcn{variant}", input_shape=(40, 40, 3), num_classes=4, width=0.0625)
    restored = run_model_test(model, (2, 40, 40, 3), expected_output_shape=(2, 40, 40, 4))
    probabilities = keras.ops.convert_to_numpy(restored(np.zeros((1, 40, 40, 3), "float32")))
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-5)


@pytest.mark.backend
def test_skip_layers_and_fixed_final_upsampling():
    model = models.build("fcn8s", input_shape=(64, 64, 3), num_classes=3, width=0.0625)
    names = {layer.name for layer in model.layers}
    assert {"score_fr", "upscore2", "score_pool4", "fuse_pool4", "upscore_pool4",
            "score_pool3", "fuse_pool3", "upscore8"} <= names  # fmt: skip
    assert not model.get_layer("upscore8").trainable
    assert model.get_layer("upscore2").trainable
    # score_pool4/3 start at zero (Long et al. 2015, section 4.2).
    assert not np.any(keras.ops.convert_to_numpy(model.get_layer("score_pool4").kernel))


def test_keras_applications_vgg16_weights_load_into_the_encoder(tmp_path):
    vgg = keras.applications.VGG16(weights=None, include_top=False, input_shape=(64, 64, 3))
    path = str(tmp_path / "vgg16_notop.weights.h5")
    vgg.save_weights(path)
    model = models.build("fcn32s", input_shape=(64, 64, 3), num_classes=2,
                         preprocessing=None, backbone_weights=path)  # fmt: skip
    encoder = keras.Model(model.input, model.get_layer("block5_pool").output)
    x = np.random.default_rng(0).uniform(-100, 100, (2, 64, 64, 3)).astype("float32")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(encoder(x)), keras.ops.convert_to_numpy(vgg(x)),
        rtol=1e-5, atol=1e-4,
    )


def test_backbone_weights_need_full_width(tmp_path):
    path = str(tmp_path / "vgg.weights.h5")
    keras.applications.VGG16(weights=None, include_top=False).save_weights(path)
    with pytest.raises(ValueError, match="does not fit"):
        models.build("fcn32s", input_shape=(32, 32, 3), width=0.25, backbone_weights=path)


def test_rejects_unknown_size_and_variant():
    with pytest.raises(ValueError, match="known input height"):
        models.build("fcn8s", input_shape=(None, None, 3))
    with pytest.raises(ValueError, match="variant"):
        models.build("fcn8s", variant="4s")


@pytest.mark.backend
def test_headless_returns_fc7_features():
    model = models.build("fcn32s", input_shape=(64, 64, 3), width=0.0625, include_top=False)
    assert model.output.shape == (None, 2, 2, 256)
