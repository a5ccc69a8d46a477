import os

import keras
import numpy as np
import pytest

from kerascv_suite import models
from kerascv_suite.layers import DoubleAttention
from kerascv_suite.models.classification.resnet import A2_RESNET50_BLOCKS, resnet


def _torchvision_style_count(model):
    """Parameters without conv biases and BN moving statistics (torchvision/timm counting)."""
    conv_biases = sum(
        int(np.prod(layer.bias.shape))
        for layer in model.layers
        if isinstance(layer, keras.layers.Conv2D)
        and layer.use_bias
        and "_se_" not in layer.name  # SE's fully connected layers keep biases in timm too
    )
    moving_stats = sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)
    return model.count_params() - conv_biases - moving_stats


@pytest.mark.parametrize(
    "name, expected",
    [
        # keras.applications.ResNet50/101/152(weights=None).count_params() (Keras counting).
        ("resnet50", 25_636_712),
        ("resnet101", 44_707_176),
        ("resnet152", 60_419_944),
    ],
)
def test_parameter_counts_match_keras_applications(name, expected):
    assert models.build(name).count_params() == expected


@pytest.mark.parametrize(
    "name, expected",
    [
        # torchvision.models.resnet18 / resnet34: sum(p.numel() for p in model.parameters()).
        ("resnet18", 11_689_512),
        ("resnet34", 21_797_672),
        # timm seresnet50 (SE fc layers with biases, convs without); Hu et al. 2018 Table 2
        # reports ~28.1M.
        ("se_resnet50", 28_088_024),
    ],
)
def test_parameter_counts_match_torchvision_timm(name, expected):
    assert _torchvision_style_count(models.build(name)) == expected


def test_layer_names_and_order_match_keras_applications():
    ours = models.build("resnet50", include_top=False, input_shape=(32, 32, 3))
    theirs = keras.applications.ResNet50(
        weights=None, include_top=False, input_shape=(32, 32, 3)
    )
    ours_names = [l.name for l in ours.layers if l.weights]
    theirs_names = [l.name for l in theirs.layers if l.weights]
    assert ours_names == theirs_names
    assert ours.get_layer("conv1_bn").epsilon == theirs.get_layer("conv1_bn").epsilon


def _compare_with_keras_applications(ours_name, reference, tmp_path, suffix, **kwargs):
    path = os.path.join(tmp_path, f"reference{suffix}")
    if suffix == ".h5":
        reference.save(path)  # legacy whole-model HDF5, as older keras.applications files
    else:
        reference.save_weights(path)
    ours = models.build(ours_name, weights=path, **kwargs)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, size=(2, *reference.input_shape[1:])).astype("float32")
    # Eager calls: tracing predict() for 100+ layers costs more than the one batch.
    expected = reference(keras.applications.resnet.preprocess_input(x.copy()), training=False)
    actual = ours(x, training=False)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(actual), keras.ops.convert_to_numpy(expected),
        rtol=1e-4, atol=1e-4,
    )


@pytest.mark.parametrize("suffix", [".weights.h5", ".h5"])
def test_loads_keras_applications_resnet50(tmp_path, suffix):
    keras.utils.set_random_seed(1)
    reference = keras.applications.ResNet50(weights=None)
    _compare_with_keras_applications("resnet50", reference, tmp_path, suffix)


@pytest.mark.parametrize(
    "name, factory",
    [
        ("resnet101", keras.applications.ResNet101),
        ("resnet152", keras.applications.ResNet152),
    ],
)
def test_loads_keras_applications_deeper_headless(tmp_path, name, factory):
    keras.utils.set_random_seed(1)
    reference = factory(weights=None, include_top=False, input_shape=(64, 64, 3))
    _compare_with_keras_applications(
        name, reference, tmp_path, ".weights.h5", include_top=False, input_shape=(64, 64, 3)
    )


@pytest.mark.backend
def test_se_and_a2_placement():
    se = models.build("se_resnet50", input_shape=(32, 32, 3), num_classes=5)
    excites = [l.name for l in se.layers if l.name.endswith("_se_excite")]
    assert len(excites) == 3 + 4 + 6 + 3  # one SE block per bottleneck
    # SE rescales the residual branch before the addition (Hu et al. 2018, Fig. 3).
    add = se.get_layer("conv4_block3_add")
    assert any(n.operation.name == "conv4_block3_se_excite" for n in add._inbound_nodes[0].parent_nodes)

    a2 = models.build("a2_resnet50", input_shape=(32, 32, 3), num_classes=5)
    blocks = [l for l in a2.layers if isinstance(l, DoubleAttention)]
    assert [l.name for l in blocks] == [f"{b}_a2" for b in A2_RESNET50_BLOCKS]
    assert a2.get_layer("conv3_block2_a2").block["conv_a"].filters == 512 // 2


@pytest.mark.backend
@pytest.mark.parametrize("pooling, shape", [(None, (2, 1, 1, 512)), ("avg", (2, 512)), ("max", (2, 512))])
def test_headless_pooling(pooling, shape):
    model = resnet(
        stack_sizes=(1, 1, 1, 1), block="basic", include_top=False, pooling=pooling,
        input_shape=(32, 32, 3),
    )
    assert model.name == "resnet10"
    x = np.zeros((2, 32, 32, 3), "float32")
    assert model.predict(x, verbose=0).shape == shape


def test_builder_rejects_bad_arguments():
    with pytest.raises(ValueError, match="block must be one of"):
        resnet(block="wide")
    with pytest.raises(ValueError, match="stack_sizes"):
        resnet(stack_sizes=(2, 2, 2))
    with pytest.raises(ValueError, match="conv9_block1"):
        resnet(a2_after=("conv9_block1",))
    with pytest.raises(ValueError, match="num_classes"):
        resnet(num_classes=0)


# torchvision 0.28 ResNet{50,101,152}_Weights.IMAGENET1K_V1.meta["num_params"].
TORCHVISION_NUM_PARAMS = {"resnet50_v1_5": 25_557_032, "resnet101_v1_5": 44_549_160,
                          "resnet152_v1_5": 60_192_808}


def _bottleneck_bn_channels(stack_sizes):
    # Stem 64; per block 6 * filters (1x1, 3x3 at filters, 1x1 at 4 * filters); the first
    # block of each stage adds the projection's 4 * filters.
    return 64 + sum(6 * f * n + 4 * f for f, n in zip((64, 128, 256, 512), stack_sizes))


@pytest.mark.parametrize("name", sorted(TORCHVISION_NUM_PARAMS))
def test_v1_5_trainable_parameters_equal_torchvision(name):
    # Keras counting = torchvision's parameters + each BN channel's moving mean and variance.
    spec = models.get_spec(name)
    moving = 2 * _bottleneck_bn_channels(spec.defaults["stack_sizes"])
    assert spec.num_params - moving == TORCHVISION_NUM_PARAMS[name]


def test_v1_5_strides_the_3x3_without_biases():
    model = models.build("resnet50_v1_5", include_top=False, input_shape=(64, 64, 3))
    assert sum(int(np.prod(w.shape)) for w in model.non_trainable_weights) == \
        2 * _bottleneck_bn_channels((3, 4, 6, 3))
    for stage in ("conv3", "conv4", "conv5"):
        assert model.get_layer(f"{stage}_block1_1_conv").strides == (1, 1)
        assert model.get_layer(f"{stage}_block1_2_conv").strides == (2, 2)
        assert model.get_layer(f"{stage}_block1_2_pad").padding == ((1, 1), (1, 1))
        assert model.get_layer(f"{stage}_block1_0_conv").strides == (2, 2)
    convs = [l for l in model.layers if isinstance(l, keras.layers.Conv2D)]
    assert not any(l.use_bias for l in convs)
    assert {l.epsilon for l in model.layers if isinstance(l, keras.layers.BatchNormalization)} \
        == {1e-5}
    assert model.output.shape[1:] == (2, 2, 2048)
    # The paper variant keeps the stride on the first 1x1.
    v1 = resnet(stack_sizes=(1, 1, 1, 1), include_top=False, input_shape=(64, 64, 3))
    assert v1.get_layer("conv3_block1_1_conv").strides == (2, 2)
    assert v1.get_layer("conv3_block1_2_conv").strides == (1, 1)
    with pytest.raises(ValueError, match="stride_on must be one of"):
        resnet(stride_on="7x7")
