import os

import keras
import numpy as np
import pytest
from keras.ops import convert_to_numpy as to_numpy

from kerascv_suite.layers import LocalResponseNormalization
from kerascv_suite.models import build
from kerascv_suite.testing import run_model_test

APPLICATIONS = {"vgg16": keras.applications.VGG16, "vgg19": keras.applications.VGG19}
PREPROCESS = {
    "vgg16": keras.applications.vgg16.preprocess_input,
    "vgg19": keras.applications.vgg19.preprocess_input,
}


@pytest.mark.parametrize(
    "name, expected",
    [
        # keras.applications.VGG16 / VGG19 at 224x224, 1000 classes.
        ("vgg16", 138_357_544),
        ("vgg19", 143_667_240),
        # Paper Table 2 rounds A, A-LRN, B to 133M and C to 134M; exact numbers by hand
        # in kerascv_suite/models/classification/vgg.py (A: 9,220,480 conv + 123,642,856
        # head; B: A + 36,928 + 147,584; C: D - 8*256*256 - 2*8*512*512).
        ("vgg11", 132_863_336),
        ("vgg11_lrn", 132_863_336),
        ("vgg13", 133_047_848),
        ("vgg16_c", 133_638_952),
    ],
)
def test_parameter_counts(name, expected):
    assert build(name).count_params() == expected


@pytest.mark.backend
@pytest.mark.parametrize("name", ["vgg16", "vgg19"])
def test_layer_names_follow_keras_applications(name):
    ours = build(name, input_shape=(32, 32, 3), dropout=0)
    theirs = APPLICATIONS[name](weights=None, input_shape=(32, 32, 3))
    # Ours adds only the in-model preprocessing layer after the input.
    assert [layer.name for layer in ours.layers[2:]] == [layer.name for layer in theirs.layers[1:]]


@pytest.mark.backend
def test_table_one_details():
    lrn = build("vgg11_lrn", input_shape=(32, 32, 3))
    names = [layer.name for layer in lrn.layers]
    # Table 1, A-LRN: LRN right after the first conv, before the first pooling.
    assert names.index("block1_conv1") + 1 == names.index("block1_lrn")
    assert isinstance(lrn.get_layer("block1_lrn"), LocalResponseNormalization)
    c = build("vgg16_c", input_shape=(32, 32, 3))
    # Table 1, C: the third convolution of blocks 3-5 is conv1.
    for block in (3, 4, 5):
        assert c.get_layer(f"block{block}_conv3").kernel_size == (1, 1)
        assert c.get_layer(f"block{block}_conv2").kernel_size == (3, 3)


# Variant-specific checks; every backend runs this model in test_registry.py.
@pytest.mark.parametrize("name", ["vgg11", "vgg16_c"])
def test_model_contract(name):
    model = build(name, input_shape=(32, 32, 3), num_classes=5)
    run_model_test(model, input_shape=(2, 32, 32, 3), expected_output_shape=(2, 5))


def _images(size, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, size=(2, size, size, 3)).astype("float32")


def _assert_same_outputs(ours, theirs, name, x):
    expected = to_numpy(theirs(PREPROCESS[name](x.copy())))
    actual = to_numpy(ours(x))
    scale = np.max(np.abs(expected))
    assert scale > 0
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4 * scale)


@pytest.mark.parametrize("name", ["vgg16", "vgg19"])
@pytest.mark.parametrize("file_format", [".weights.h5", "legacy.h5"])
def test_loads_keras_applications_weights(tmp_path, name, file_format):
    # 32x32 keeps the files small; the layer list and kernel shapes of blocks 1-5 are those
    # of the ImageNet files, fc1 follows the input size.
    shape = (32, 32, 3)
    theirs = APPLICATIONS[name](weights=None, input_shape=shape, classifier_activation=None)
    path = os.fspath(tmp_path / f"{name}{file_format}")
    if file_format == ".weights.h5":
        theirs.save_weights(path)
    else:
        theirs.save(path)  # legacy whole-model HDF5
    ours = build(name, input_shape=shape, weights=path, classifier_activation=None)
    _assert_same_outputs(ours, theirs, name, _images(32))


@pytest.mark.parametrize("file_format", [".weights.h5", "legacy.h5"])
def test_headless_loads_keras_applications_weights(tmp_path, file_format):
    shape = (64, 64, 3)
    theirs = keras.applications.VGG16(
        weights=None, include_top=False, pooling="avg", input_shape=shape
    )
    path = os.fspath(tmp_path / f"notop{file_format}")
    if file_format == ".weights.h5":
        theirs.save_weights(path)
    else:
        theirs.save(path)
    ours = build("vgg16", input_shape=shape, include_top=False, pooling="avg", weights=path)
    assert ours.output.shape == (None, 512)
    _assert_same_outputs(ours, theirs, "vgg16", _images(64, seed=1))


def test_rejects_unknown_config():
    with pytest.raises(ValueError, match="config"):
        build("vgg16", config="F")


# torchvision 0.28 VGG{11,13,16,19}_BN_Weights.IMAGENET1K_V1.meta["num_params"].
TORCHVISION_BN_NUM_PARAMS = {"vgg11_bn": 132_868_840, "vgg13_bn": 133_053_736,
                             "vgg16_bn": 138_365_992, "vgg19_bn": 143_678_248}
# BN channels = the convolutions' filters of Table 1 (A, B, D, E), summed by hand.
BN_CHANNELS = {"vgg11_bn": 64 + 128 + 2 * 256 + 4 * 512,
               "vgg13_bn": 2 * 64 + 2 * 128 + 2 * 256 + 4 * 512,
               "vgg16_bn": 2 * 64 + 2 * 128 + 3 * 256 + 6 * 512,
               "vgg19_bn": 2 * 64 + 2 * 128 + 4 * 256 + 8 * 512}


@pytest.mark.parametrize("name", sorted(TORCHVISION_BN_NUM_PARAMS))
def test_bn_variants_have_torchvisions_parameters(name):
    # Keras counting = torchvision's parameters + each BN channel's moving mean and variance.
    from kerascv_suite.models import get_spec

    assert get_spec(name).num_params - 2 * BN_CHANNELS[name] == TORCHVISION_BN_NUM_PARAMS[name]
    assert get_spec(name).num_params == get_spec(name[:-3]).num_params + 4 * BN_CHANNELS[name]


def test_bn_variant_is_conv_bn_relu():
    model = build("vgg11_bn", include_top=False, input_shape=(32, 32, 3))
    names = [layer.name for layer in model.layers[2:6]]
    assert names == ["block1_conv1", "block1_bn1", "block1_relu1", "block1_pool"]
    assert model.get_layer("block1_conv1").activation.__name__ == "linear"
    assert model.get_layer("block3_bn2").epsilon == 1e-5
    bn = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]
    assert sum(l.gamma.shape[0] for l in bn) == BN_CHANNELS["vgg11_bn"]
    assert model.name == "vgg11_bn"
    # The paper variant is unchanged: ReLU inside the convolution, no BN.
    plain = build("vgg11", include_top=False, input_shape=(32, 32, 3))
    assert not any(isinstance(l, keras.layers.BatchNormalization) for l in plain.layers)
