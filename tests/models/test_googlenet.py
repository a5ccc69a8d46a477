import math

import keras
import numpy as np
import pytest

from kerascv_suite.models.classification.googlenet import INCEPTION_FILTERS, googlenet
from kerascv_suite.models.registry import build

# Table 1 of Szegedy et al. 2015, "output size" column, at 224x224x3 input.
TABLE1_OUTPUT_SHAPES = {
    "conv1_7x7_s2": (112, 112, 64),
    "pool1_3x3_s2": (56, 56, 64),
    "conv2_3x3": (56, 56, 192),
    "pool2_3x3_s2": (28, 28, 192),
    "inception_3a_output": (28, 28, 256),
    "inception_3b_output": (28, 28, 480),
    "pool3_3x3_s2": (14, 14, 480),
    "inception_4a_output": (14, 14, 512),
    "inception_4b_output": (14, 14, 512),
    "inception_4c_output": (14, 14, 512),
    "inception_4d_output": (14, 14, 528),
    "inception_4e_output": (14, 14, 832),
    "pool4_3x3_s2": (7, 7, 832),
    "inception_5a_output": (7, 7, 832),
    "inception_5b_output": (7, 7, 1024),
    # The paper's "avg pool 7x7/1" gives 1x1x1024; ours is the equivalent global pooling.
    "avg_pool": (1024,),
    "dropout": (1024,),
    "predictions": (1000,),
}

# Table 1's "params" column, in K where K = 1024 weights (biases not counted): with that unit
# conv2 (64*64 + 3*3*64*192 = 114,688 = 112K) and linear (1024*1000 = 1000K) match exactly.
TABLE1_PARAMS_K = {
    "conv1": 2.7,
    "conv2": 112,
    "inception_3a": 159,
    "inception_3b": 380,
    "inception_4a": 364,
    "inception_4b": 437,
    "inception_4c": 463,
    "inception_4d": 580,
    "inception_4e": 840,
    "inception_5a": 1072,
    "inception_5b": 1388,
    "linear": 1000,
}


def _v1_weights(c, f1, r3, f3, r5, f5, pp):
    """Weights of an Inception module from Table 1's filter columns, on c input channels."""
    return c * f1 + c * r3 + 9 * r3 * f3 + c * r5 + 25 * r5 * f5 + c * pp


# Hand calculation from Table 1's filter columns (no biases); the input channels are the
# previous row's output depth.
HAND_WEIGHTS = {
    "conv1": 7 * 7 * 3 * 64,
    "conv2": 64 * 64 + 3 * 3 * 64 * 192,
    "inception_3a": _v1_weights(192, 64, 96, 128, 16, 32, 32),
    "inception_3b": _v1_weights(256, 128, 128, 192, 32, 96, 64),
    "inception_4a": _v1_weights(480, 192, 96, 208, 16, 48, 64),
    "inception_4b": _v1_weights(512, 160, 112, 224, 24, 64, 64),
    "inception_4c": _v1_weights(512, 128, 128, 256, 24, 64, 64),
    "inception_4d": _v1_weights(512, 112, 144, 288, 32, 64, 64),
    "inception_4e": _v1_weights(528, 256, 160, 320, 32, 128, 128),
    "inception_5a": _v1_weights(832, 256, 160, 320, 32, 128, 128),
    "inception_5b": _v1_weights(832, 384, 192, 384, 48, 128, 128),
    "linear": 1024 * 1000,
}

# Entries of the params column that its own filter columns do not give (a known inconsistency
# of the table): conv1 is 7*7*3*64 = 9,408 weights (9.2K, not 2.7K); 4c is 509,440 (497.5K,
# not 463K); 5a is 1,042,432 (1018K, not 1072K). The others agree within 2%.
TABLE1_INCONSISTENT = {"conv1", "inception_4c", "inception_5a"}


def _stage_of(layer_name):
    if layer_name.startswith("conv1_"):
        return "conv1"
    if layer_name.startswith("conv2_"):
        return "conv2"
    if layer_name == "predictions":
        return "linear"
    if layer_name.startswith("inception_"):
        return layer_name[: len("inception_3a")]
    return None


def _stage_weights(model):
    counts = {}
    for layer in model.layers:
        stage = _stage_of(layer.name)
        if stage is not None and hasattr(layer, "kernel"):
            counts[stage] = counts.get(stage, 0) + math.prod(layer.kernel.shape)
    return counts


@pytest.fixture(scope="module")
def reference_model():
    return googlenet()


def test_table1_output_shapes(reference_model):
    for name, shape in TABLE1_OUTPUT_SHAPES.items():
        assert tuple(reference_model.get_layer(name).output.shape[1:]) == shape, name


def test_table1_stage_weights(reference_model):
    counts = _stage_weights(reference_model)
    assert counts == HAND_WEIGHTS
    for stage, paper_k in TABLE1_PARAMS_K.items():
        ours_k = counts[stage] / 1024
        if stage not in TABLE1_INCONSISTENT:
            assert abs(ours_k - paper_k) <= 0.02 * paper_k, (stage, ours_k, paper_k)


def test_num_params():
    # Hand calculation from Table 1: the 6,990,272 weights of HAND_WEIGHTS plus one bias per
    # filter or unit, 8,280 = 64 (conv1) + 64 + 192 (conv2) + the six filter counts of each
    # Inception row summed over 3a-5b (6,960) + 1000 (linear).
    model = googlenet()
    assert sum(HAND_WEIGHTS.values()) == 6_990_272
    biases = sum(
        layer.bias.shape[0] for layer in model.layers if getattr(layer, "bias", None) is not None
    )
    assert biases == 8_280
    assert model.count_params() == 6_990_272 + 8_280 == 6_998_552


def test_bottleneck_cost_of_3a_5x5(reference_model):
    """The worked example of the paper's section 4 / the seeds: 1x1 reductions cut the cost."""
    reduce = reference_model.get_layer("inception_3a_5x5_reduce")
    conv = reference_model.get_layer("inception_3a_5x5")
    h, w, c_in = reduce.input.shape[1:]
    kh, kw, c_mid, c_out = conv.kernel.shape
    assert tuple(conv.output.shape[1:]) == (h, w, c_out)
    direct = h * w * kh * kw * c_in * c_out
    bottleneck = h * w * c_in * reduce.kernel.shape[-1] + h * w * kh * kw * c_mid * c_out
    # 28*28*5*5*192*32 and 28*28*192*16 + 28*28*5*5*16*32.
    assert direct == 120_422_400
    assert bottleneck == 12_443_648


def test_aux_classifiers_reference_shapes():
    model = googlenet(aux_classifiers=True)
    assert set(model.output) == {"predictions", "aux1", "aux2"}
    # Section 5: the 5x5/3 average pooling gives 4x4x512 after 4a and 4x4x528 after 4d.
    assert tuple(model.get_layer("aux1_avg_pool").output.shape[1:]) == (4, 4, 512)
    assert tuple(model.get_layer("aux2_avg_pool").output.shape[1:]) == (4, 4, 528)
    assert model.get_layer("aux1_fc").units == 1024
    assert model.get_layer("aux1_dropout").rate == 0.7
    # Each head: 1x1 conv (c*128 + 128), FC (4*4*128*1024 + 1024), classifier (1024*1000 + 1000).
    heads = sum(c * 128 + 128 + 2048 * 1024 + 1024 + 1024 * 1000 + 1000 for c in (512, 528))
    assert model.count_params() == 6_998_552 + heads


# Build / predict / train / .keras round trip of `googlenet` and `googlenet_aux` at their
# `test_overrides` run in tests/models/test_registry.py.


# Variant-specific checks; every backend runs this model in test_registry.py.
def test_googlenet_aux_trains_with_weighted_losses():
    model = build("googlenet_aux", input_shape=(65, 65, 3), num_classes=5)
    x = np.random.default_rng(0).uniform(0, 255, (2, 65, 65, 3)).astype("float32")
    y = np.array([1, 3])
    # The docstring's recipe: auxiliary losses weighted by 0.3 (paper section 5).
    model.compile(
        optimizer=keras.optimizers.SGD(0.01),
        loss={k: "sparse_categorical_crossentropy" for k in ("predictions", "aux1", "aux2")},
        loss_weights={"predictions": 1.0, "aux1": 0.3, "aux2": 0.3},
    )
    history = model.fit(x, {"predictions": y, "aux1": y, "aux2": y}, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    outputs = model.predict(x, verbose=0)
    assert {k: v.shape for k, v in outputs.items()} == {k: (2, 5) for k in outputs}
    assert set(outputs) == {"predictions", "aux1", "aux2"}


@pytest.mark.backend
def test_headless_pooling():
    assert tuple(build("googlenet", input_shape=(32, 32, 3), num_classes=5).output.shape) == (
        None,
        5,
    )
    model = googlenet(include_top=False, pooling="avg", input_shape=(32, 32, 3))
    assert tuple(model.output.shape) == (None, 1024)
    features = googlenet(include_top=False, input_shape=(64, 64, 3))
    assert tuple(features.output.shape) == (None, 2, 2, 1024)


def test_aux_needs_top():
    with pytest.raises(ValueError, match="include_top"):
        googlenet(include_top=False, aux_classifiers=True)


def test_torchvision_layout():
    from kerascv_suite.models import get_spec

    model = build("googlenet_tv", include_top=False, input_shape=(64, 64, 3))
    bn = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]
    channels = sum(l.gamma.shape[0] for l in bn)
    # One BN per convolution: 64 + 64 + 192 (stem) + the six filter counts of each Inception
    # row summed over 3a-5b (6,960) = 7,280 channels.
    assert channels == 64 + 64 + 192 + sum(sum(f) for f in INCEPTION_FILTERS.values()) == 7_280
    # Keras counting = torchvision 0.28 GoogLeNet_Weights.IMAGENET1K_V1.meta["num_params"]
    # (6,624,904, no auxiliary heads) + each BN channel's moving mean and variance.
    assert get_spec("googlenet_tv").num_params - 2 * channels == 6_624_904
    assert {l.epsilon for l in bn} == {1e-3}
    assert not any(l.use_bias for l in model.layers if isinstance(l, keras.layers.Conv2D))
    # torchvision's Inception: a 3x3 convolution in the "5x5" branch.
    assert model.get_layer("inception_3a_5x5_conv").kernel_size == (3, 3)
    # Ceil-mode poolings (torch: ceil((n - k) / 2) + 1): 64 -> 32 (conv1) -> 16 ("valid"
    # would give 15) -> 8 -> 4 -> 2.
    sizes = {"conv1_7x7_s2_relu": 32, "pool1_3x3_s2": 16, "pool2_3x3_s2": 8,
             "pool3_3x3_s2": 4, "pool4_2x2_s2": 2, "inception_5b_output": 2}
    assert {n: model.get_layer(n).output.shape[1] for n in sizes} == sizes
    # On an odd size ceil mode gives (15 - 3) / 2 + 1 = 7 where "same" would give 8.
    odd = build("googlenet_tv", include_top=False, input_shape=(30, 30, 3))
    assert odd.get_layer("conv1_7x7_s2_relu").output.shape[1] == 15
    assert odd.get_layer("pool1_3x3_s2").output.shape[1] == 7
    with pytest.raises(ValueError, match="no auxiliary classifiers"):
        build("googlenet_tv", aux_classifiers=True)
