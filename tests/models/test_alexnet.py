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


# torchvision 0.28 torchvision/models/alexnet.py, weights + biases per layer (hand count):
# 11*11*3*64+64, 5*5*64*192+192, 3*3*192*384+384, 3*3*384*256+256, 3*3*256*256+256; the head
# as Caffe's. Total = AlexNet_Weights.IMAGENET1K_V1.meta["num_params"] = 61,100,840.
OWT_PARAMS = {
    **CAFFE_ALEXNET_PARAMS, "conv1": 23_296, "conv2": 307_392, "conv3": 663_936,
    "conv4": 884_992, "conv5": 590_080,
}  # fmt: skip


def test_one_weird_trick_is_torchvisions_alexnet():
    from kerascv_suite.models import get_spec

    assert sum(OWT_PARAMS.values()) == get_spec("alexnet_owt").num_params == 61_100_840
    # At 64 px (the parity test's size) conv5 ends at 1x1 and the adaptive pooling repeats it
    # to 6x6 as torchvision's AdaptiveAvgPool2d does; fc6 always sees 6*6*256 features.
    model = build("alexnet_owt", input_shape=(64, 64, 3), num_classes=10)
    sizes = {"conv1": 15, "pool1": 7, "conv2": 7, "pool2": 3, "conv5": 3, "pool5": 1,
             "avgpool": 6}
    assert {n: model.get_layer(n).output.shape[1] for n in sizes} == sizes
    assert _params(model, ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6"]) == {
        n: OWT_PARAMS[n] for n in ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6")}
    names = [layer.name for layer in model.layers]
    # torchvision's classifier: Dropout, fc6, ReLU, Dropout, fc7, ReLU, fc8.
    assert names[names.index("flatten"):] == ["flatten", "drop6", "fc6", "drop7", "fc7",
                                              "predictions"]
    # The paper variant keeps its dropout after fc6 / fc7 and no adaptive pooling.
    paper = [layer.name for layer in build("alexnet", input_shape=(67, 67, 3)).layers]
    assert paper[paper.index("pool5"):] == ["pool5", "flatten", "fc6", "drop6", "fc7",
                                            "drop7", "predictions"]
    with pytest.raises(ValueError, match="adaptive_pool must be"):
        build("alexnet_owt", adaptive_pool=(0, 6))
