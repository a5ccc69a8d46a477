"""AlexNet (Krizhevsky et al., 2012) in one and two towers, AlexNet "one weird trick"
(Krizhevsky, 2014; torchvision's `alexnet`) and ZFNet (Zeiler & Fergus, 2013).

All are five convolutions and three dense layers; they differ only in data: the
convolutions' widths and padding, the groups, where local response normalization sits, how
pooling pads, an adaptive average pooling before the classifier and where dropout sits.
"""

import keras

from kerascv_suite.layers.adaptive_average_pooling import AdaptiveAveragePooling
from kerascv_suite.layers.local_response_normalization import LocalResponseNormalization
from kerascv_suite.models.common import check_head_args, finish_model, global_pool, image_input
from kerascv_suite.models.registry import register_model

ALEXNET_PAPER = (
    "A. Krizhevsky, I. Sutskever, G. E. Hinton. ImageNet Classification with Deep "
    "Convolutional Neural Networks. NIPS 2012."
)
OWT_PAPER = (
    "A. Krizhevsky. One weird trick for parallelizing convolutional neural networks. "
    "arXiv:1404.5997, 2014; as torchvision 0.28 torchvision/models/alexnet.py (AlexNet)."
)
ZFNET_PAPER = (
    "M. D. Zeiler, R. Fergus. Visualizing and Understanding Convolutional Networks. "
    "ECCV 2014 (arXiv:1311.2901, 2013)."
)

# Each convolution: (filters, kernel, stride, padding, groups). `padding` is "valid", "same"
# or an int of explicit zero padding (Caffe's `pad`). groups=2 is the paper's two-GPU split:
# conv2, conv4 and conv5 only see the maps of their own tower (paper Fig. 2).
# Pooling pads "same" where Caffe's ceil-mode pooling gives one more row than "valid".
# `adaptive_pool`: (h, w) of an adaptive average pooling before the flatten (None: none), so
# the classifier fits every input size. `dropout_before_fc`: dropout precedes fc6 and fc7
# (torchvision's classifier) instead of following them (the papers' Caffe models).
CONFIGS = {
    # The two towers merged into one: every convolution sees every map of the layer below.
    "alexnet": dict(
        convs=((96, 11, 4, "valid", 1), (256, 5, 1, "same", 1), (384, 3, 1, "same", 1),
               (384, 3, 1, "same", 1), (256, 3, 1, "same", 1)),
        lrn_position=None,
        pool_padding=("valid", "valid", "valid"),
    ),
    # "One weird trick" (Krizhevsky 2014, section 3: 64, 192, 384, 256, 256 filters, one
    # tower) as torchvision builds it: 11x11/4 padded by 2, 5x5 padded by 2, 3x3/2 max
    # poolings without padding, an adaptive 6x6 average pooling, Dropout -> fc6 -> ReLU ->
    # Dropout -> fc7 -> ReLU -> fc8. Maps at 224x224: 55, 27, 27, 13, 13, 6.
    "alexnet_owt": dict(
        convs=((64, 11, 4, 2, 1), (192, 5, 1, "same", 1), (384, 3, 1, "same", 1),
               (256, 3, 1, "same", 1), (256, 3, 1, "same", 1)),
        lrn_position=None,
        pool_padding=("valid", "valid", "valid"),
        adaptive_pool=(6, 6),
        dropout_before_fc=True,
    ),
    # The paper's network (and Caffe's bvlc_alexnet): conv -> ReLU -> LRN -> pool, twice.
    "alexnet_two_tower": dict(
        convs=((96, 11, 4, "valid", 1), (256, 5, 1, "same", 2), (384, 3, 1, "same", 1),
               (384, 3, 1, "same", 2), (256, 3, 1, "same", 2)),
        lrn_position="before_pool",
        pool_padding=("valid", "valid", "valid"),
    ),
    # Zeiler & Fergus Fig. 3: 7x7/2 first layer, 5x5/2 second, maps 110-55-26-13-13-13-6,
    # contrast normalization across maps after the first two poolings.
    "zfnet": dict(
        convs=((96, 7, 2, 1, 1), (256, 5, 2, "valid", 1), (384, 3, 1, "same", 1),
               (384, 3, 1, "same", 1), (256, 3, 1, "same", 1)),
        lrn_position="after_pool",
        pool_padding=("same", "same", "valid"),
    ),
}  # fmt: skip
LRN_POSITIONS = (None, "before_pool", "after_pool")
# Krizhevsky et al. 2012, section 3.3 (paper convention: alpha multiplies the plain sum).
# Zeiler & Fergus do not give their normalization's constants; we reuse these.
LRN_ARGS = dict(size=5, alpha=1e-4, beta=0.75, k=2.0, alpha_convention="paper")


def _conv(x, spec, name):
    filters, kernel, stride, padding, groups = spec
    if isinstance(padding, int):
        x = keras.layers.ZeroPadding2D(padding, name=f"{name}_pad")(x)
        padding = "valid"
    return keras.layers.Conv2D(
        filters, kernel, strides=stride, padding=padding, groups=groups, activation="relu",
        name=name,
    )(x)  # fmt: skip


def _pool_and_norm(x, index, lrn_position, pool_padding):
    if lrn_position == "before_pool":
        x = LocalResponseNormalization(**LRN_ARGS, name=f"norm{index}")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, padding=pool_padding, name=f"pool{index}")(x)
    if lrn_position == "after_pool":
        x = LocalResponseNormalization(**LRN_ARGS, name=f"norm{index}")(x)
    return x


def alexnet(
    num_classes=1000,
    input_shape=(227, 227, 3),
    include_top=True,
    weights=None,
    pooling=None,
    classifier_activation="softmax",
    preprocessing="caffe",
    config="alexnet",
    lrn_position="config",
    adaptive_pool="config",
    dropout=0.5,
    name=None,
):
    """Builds AlexNet or ZFNet: five ReLU convolutions, three max poolings, three dense layers.

    AlexNet takes 227x227 inputs (the size at which 11x11/4 without padding gives the
    paper's 55x55 maps; the paper's "224" does not fit its own layer sizes, and Caffe's
    bvlc_alexnet crops 227). Maps: 55, 27, 13, 13, 13, 6. ZFNet takes 224x224: 110, 55, 26,
    13, 13, 13, 6 (Zeiler & Fergus, Fig. 3). AlexNet "one weird trick" (torchvision's) takes
    224x224 and pools adaptively to 6x6 before `flatten`, so its classifier fits any input.

    Args:
        num_classes: number of output classes.
        input_shape: `(height, width, channels)`; 67x67 (AlexNet), 63x63 (one weird trick)
            or 53x53 (ZFNet) is the smallest input that leaves every layer at least one pixel.
        include_top: whether to add fc6, fc7 (4096 each, with dropout) and the classifier;
            without them the model returns the last pooling's `(batch, h, w, 256)` maps.
        weights: None, or a weights file / MLflow URI (see `load_weights`).
        pooling: None, `"avg"` or `"max"`, applied when `include_top=False`.
        classifier_activation: activation of the `predictions` layer.
        preprocessing: an `ImagePreprocessing` mode or None (Caffe's models subtract the
            BGR mean).
        config: a key of `CONFIGS`: `"alexnet"`, `"alexnet_two_tower"`, `"alexnet_owt"` or
            `"zfnet"`.
        lrn_position: `"config"` for the config's own choice, or override it with None,
            `"before_pool"` (conv1/conv2 -> ReLU -> LRN -> pool, AlexNet) or `"after_pool"`
            (pool -> LRN, ZFNet).
        adaptive_pool: `"config"` for the config's own choice (6x6 in `"alexnet_owt"`, none
            in the others), None for none, or the `(height, width)` of an adaptive average
            pooling before `flatten` (it fixes fc6's input at `height * width * 256`).
        dropout: dropout rate after fc6 and fc7 (0.5 in both papers); before them in
            `"alexnet_owt"`, as torchvision.
        name: model name; defaults to `config`.

    Returns:
        A `keras.Model` mapping `(batch, height, width, 3)` images in [0, 255] to
        `(batch, num_classes)` probabilities.
    """
    check_head_args(include_top, num_classes, pooling)
    if config not in CONFIGS:
        raise ValueError(f"config must be one of {tuple(CONFIGS)}. Received: config={config!r}")
    spec = CONFIGS[config]
    if lrn_position == "config":
        lrn_position = spec["lrn_position"]
    if lrn_position not in LRN_POSITIONS:
        raise ValueError(
            f"lrn_position must be 'config' or one of {LRN_POSITIONS}. "
            f"Received: lrn_position={lrn_position!r}"
        )
    if adaptive_pool == "config":
        adaptive_pool = spec.get("adaptive_pool")
    if adaptive_pool is not None and (len(tuple(adaptive_pool)) != 2 or min(adaptive_pool) < 1):
        raise ValueError(
            "adaptive_pool must be 'config', None or a (height, width) of positive sizes. "
            f"Received: adaptive_pool={adaptive_pool!r}"
        )
    convs, pool_padding = spec["convs"], spec["pool_padding"]

    # === Feature extractor ===
    inputs, x = image_input(input_shape, preprocessing)
    x = _conv(x, convs[0], "conv1")
    x = _pool_and_norm(x, 1, lrn_position, pool_padding[0])
    x = _conv(x, convs[1], "conv2")
    x = _pool_and_norm(x, 2, lrn_position, pool_padding[1])
    x = _conv(x, convs[2], "conv3")
    x = _conv(x, convs[3], "conv4")
    x = _conv(x, convs[4], "conv5")
    x = keras.layers.MaxPooling2D(3, strides=2, padding=pool_padding[2], name="pool5")(x)

    # === Head ===
    if include_top:
        if adaptive_pool is not None:
            # The bins of torchvision's AdaptiveAvgPool2d (floor/ceil of i * size / 6).
            x = AdaptiveAveragePooling(tuple(adaptive_pool), name="avgpool")(x)
        x = keras.layers.Flatten(name="flatten")(x)
        before = spec.get("dropout_before_fc", False)
        for index in (6, 7):
            if before:
                x = keras.layers.Dropout(dropout, name=f"drop{index}")(x)
            x = keras.layers.Dense(4096, activation="relu", name=f"fc{index}")(x)
            if not before:
                x = keras.layers.Dropout(dropout, name=f"drop{index}")(x)
        x = keras.layers.Dense(num_classes, activation=classifier_activation, name="predictions")(x)
    else:
        x = global_pool(x, pooling)
    return finish_model(inputs, x, name or config, weights)


# Parameter counts at the defaults (1000 classes), weights + biases per layer:
#   alexnet_two_tower (Caffe bvlc_alexnet, the well-known 60,965,224): conv1 11*11*3*96+96
#   = 34,944; conv2 5*5*48*256+256 = 307,456; conv3 3*3*256*384+384 = 885,120; conv4
#   3*3*192*384+384 = 663,936; conv5 3*3*192*256+256 = 442,624; fc6 6*6*256*4096+4096 =
#   37,752,832; fc7 4096*4096+4096 = 16,781,312; fc8 4096*1000+1000 = 4,097,000.
#   alexnet: the same without groups: conv2 614,656, conv4 1,327,488, conv5 884,992
#   -> 62,378,344.
#   zfnet: alexnet with conv1 7*7*3*96+96 = 14,208 instead of 34,944 -> 62,357,608.
#   alexnet_owt: conv1 11*11*3*64+64 = 23,296; conv2 5*5*64*192+192 = 307,392; conv3
#   3*3*192*384+384 = 663,936; conv4 3*3*384*256+256 = 884,992; conv5 3*3*256*256+256 =
#   590,080; fc6-fc8 as above -> 61,100,840 = torchvision 0.28's
#   AlexNet_Weights.IMAGENET1K_V1.meta["num_params"] (no BatchNorm: Keras counts the same).
_VARIANTS = {
    "alexnet": dict(paper=ALEXNET_PAPER, num_params=62_378_344, input_shape=(227, 227, 3),
                    test_shape=(67, 67, 3)),
    "alexnet_two_tower": dict(paper=ALEXNET_PAPER, num_params=60_965_224,
                              input_shape=(227, 227, 3), test_shape=(67, 67, 3)),
    "zfnet": dict(paper=ZFNET_PAPER, num_params=62_357_608, input_shape=(224, 224, 3),
                  test_shape=(53, 53, 3)),
    "alexnet_owt": dict(paper=OWT_PAPER, num_params=61_100_840, input_shape=(224, 224, 3),
                        test_shape=(63, 63, 3), preprocessing="torch"),
}  # fmt: skip
# The smoke test pools alexnet_owt to 2x2, not 6x6: fc6 gets 1,024 inputs instead of 9,216
# (4.2M instead of 37.8M weights to train and save), the adaptive pooling path stays.
_TEST_EXTRA = {"alexnet_owt": {"adaptive_pool": (2, 2)}}

for _name, _variant in _VARIANTS.items():
    register_model(
        _name,
        alexnet,
        task="classification",
        paper=_variant["paper"],
        num_params=_variant["num_params"],
        test_overrides={"input_shape": _variant["test_shape"], "num_classes": 5,
                        **_TEST_EXTRA.get(_name, {})},
        config=_name,
        input_shape=_variant["input_shape"],
        **({"preprocessing": _variant["preprocessing"]} if "preprocessing" in _variant else {}),
    )
