import keras
import numpy as np
import pytest
from keras.ops import convert_to_numpy as to_numpy

from kerascv_suite.layers import LocalResponseNormalization
from kerascv_suite.models import build
from kerascv_suite.testing import run_model_test

# Caffe's bvlc_alexnet (the paper's two-tower network), weights + biases per layer; the
# well-known total is 60,965,224.
CAFFE_ALEXNET_PARAMS = {
    "conv1": 34_944, "conv2": 307_456, "conv3": 885_120, "conv4": 663_936, "conv5": 442_624,
    "fc6": 37_752_832, "fc7": 16_781_312, "predictions": 4_097_000,
}  # fmt: skip
# Without groups, conv2/4/5 see all maps (hand count): 5*5*96*256+256, 3*3*384*384+384,
# 3*3*384*256+256.
SINGLE_TOWER_PARAMS = {
    **CAFFE_ALEXNET_PARAMS, "conv2": 614_656, "conv4": 1_327_488, "conv5": 884_992
}  # fmt: skip


def _params(model, names):
    return {name: model.get_layer(name).count_params() for name in names}


def test_two_tower_matches_caffe_alexnet():
    model = build("alexnet_two_tower")
    assert _params(model, CAFFE_ALEXNET_PARAMS) == CAFFE_ALEXNET_PARAMS
    assert model.count_params() == 60_965_224
    assert [model.get_layer(f"conv{i}").groups for i in range(1, 6)] == [1, 2, 1, 2, 2]
    # Paper Fig. 2 / Caffe: 55x55x96 after conv1, 27x27x256 after conv2, 13x13 for conv3-5,
    # 6x6x256 into fc6.
    assert model.get_layer("conv1").output.shape[1:] == (55, 55, 96)
    assert model.get_layer("conv2").output.shape[1:] == (27, 27, 256)
    assert model.get_layer("conv5").output.shape[1:] == (13, 13, 256)
    assert model.get_layer("pool5").output.shape[1:] == (6, 6, 256)
    norm1, norm2 = model.get_layer("norm1"), model.get_layer("norm2")
    # Section 3.3: k = 2, n = 5, alpha = 1e-4, beta = 0.75.
    for norm in (norm1, norm2):
        assert isinstance(norm, LocalResponseNormalization)
        assert (norm.k, norm.size, norm.alpha, norm.beta) == (2.0, 5, 1e-4, 0.75)
    names = [layer.name for layer in model.layers]
    # Section 3.4/3.5: LRN follows conv1 and conv2 (after ReLU), max pooling follows LRN.
    assert names.index("conv1") < names.index("norm1") < names.index("pool1")
    assert names.index("conv2") < names.index("norm2") < names.index("pool2")


def test_single_tower_parameters():
    model = build("alexnet")
    assert _params(model, SINGLE_TOWER_PARAMS) == SINGLE_TOWER_PARAMS
    # 60,965,224 + 307,200 + 663,552 + 442,368 extra weights without groups.
    assert model.count_params() == 62_378_344


def test_zfnet_matches_paper_figure_3():
    model = build("zfnet")
    # Zeiler & Fergus Fig. 3: 224 -> 110 (7x7/2) -> 55 (pool) -> 26 (5x5/2) -> 13 (pool)
    # -> 13 -> 13 -> 13 -> 6 (pool).
    sizes = {"conv1": 110, "pool1": 55, "conv2": 26, "pool2": 13, "conv3": 13,
             "conv4": 13, "conv5": 13, "pool5": 6}  # fmt: skip
    for name, size in sizes.items():
        assert model.get_layer(name).output.shape[1:3] == (size, size), name
    assert model.get_layer("conv1").kernel_size == (7, 7)
    assert model.get_layer("conv1").strides == (2, 2)
    # Contrast normalization across maps after the first two poolings.
    names = [layer.name for layer in model.layers]
    assert names.index("pool1") < names.index("norm1") < names.index("conv2")
    assert names.index("pool2") < names.index("norm2") < names.index("conv3")
    # Hand count: alexnet's 62,378,344 with conv1 7*7*3*96+96 = 14,208 instead of 34,944.
    assert model.count_params() == 62_378_344 - 34_944 + 14_208


@pytest.mark.backend
def test_grouped_convolution_keeps_towers_apart():
    model = build("alexnet_two_tower", input_shape=(67, 67, 3), num_classes=5)
    # A sub-model from conv2's input: with groups=2, output maps 0-127 see input maps 0-47.
    conv2 = model.get_layer("conv2")
    inputs = keras.Input(shape=conv2.input.shape[1:])
    tower = keras.Model(inputs, conv2(inputs))
    x = np.random.default_rng(0).normal(size=(1, *conv2.input.shape[1:])).astype("float32")
    changed = x.copy()
    changed[..., 48:] += 1.0
    before, after = to_numpy(tower(x)), to_numpy(tower(changed))
    np.testing.assert_array_equal(before[..., :128], after[..., :128])
    assert not np.allclose(before[..., 128:], after[..., 128:])


# Variant-specific checks; every backend runs this model in test_registry.py.
@pytest.mark.parametrize(
    "name, size", [("alexnet_two_tower", 67), ("zfnet", 53)]
)  # fmt: skip
def test_model_contract_at_smallest_input(name, size):
    model = build(name, input_shape=(size, size, 3), num_classes=5)
    assert model.get_layer("pool5").output.shape[1:3] == (1, 1)
    run_model_test(model, input_shape=(2, size, size, 3), expected_output_shape=(2, 5))


@pytest.mark.backend
def test_headless_and_lrn_override():
    model = build("alexnet", input_shape=(67, 67, 3), include_top=False, pooling="max",
                  lrn_position="before_pool")  # fmt: skip
    assert model.output.shape == (None, 256)
    assert isinstance(model.get_layer("norm1"), LocalResponseNormalization)


def test_rejects_unknown_options():
    with pytest.raises(ValueError, match="config"):
        build("alexnet", config="googlenet")
    with pytest.raises(ValueError, match="lrn_position"):
        build("alexnet", lrn_position="everywhere")
