"""Inception v2 and v3: the factorized Inception networks.

Szegedy, Vanhoucke, Ioffe, Shlens and Wojna, "Rethinking the Inception Architecture for
Computer Vision", CVPR 2016.

Both versions are data for one builder: a stem (a list of convolutions and poolings) and a list
of Inception blocks, each a branch spec from `kerascv_suite.layers.inception_module`.
"""

import keras

from kerascv_suite.layers.inception_module import (
    Conv,
    Pool,
    apply_block,
    conv_layers,
    inception_v2_a_branches,
    inception_v2_b_branches,
    inception_v2_c_branches,
    inception_v2_reduction_branches,
    make_block_layers,
)
from kerascv_suite.models.common import check_head_args, finish_model, global_pool, image_input
from kerascv_suite.models.registry import register_model

PAPER = (
    "Szegedy et al., Rethinking the Inception Architecture for Computer Vision, CVPR 2016 "
    "(arXiv:1512.00567)"
)

# Table 1 of the paper. The stem's widths are the next row's input depth (32, 32, 64, 80, 192,
# 288); the last convolution keeps the 35x35 grid, so it is padded. The paper gives no branch
# widths, so the modules take Inception-v3's (keras.applications / TF-slim), reshaped to the
# paper's figures and grids: three Figure-5 modules at 35x35x288, Figure-10 reduction to
# 17x17x768, five Figure-6 modules (n=7), Figure-10 reduction to 8x8x1280, two Figure-7
# modules to 8x8x2048.
V2_STEM = (
    Conv("1", 32, (3, 3), 2, "valid"),
    Conv("2", 32, (3, 3), 1, "valid"),
    Conv("3", 64, (3, 3), 1, "same"),
    Pool("pool1", "max", 3, 2, "valid"),
    Conv("4", 80, (3, 3), 1, "valid"),
    Conv("5", 192, (3, 3), 2, "valid"),
    Conv("6", 288, (3, 3), 1, "same"),
)
V2_BLOCKS = (
    *[inception_v2_a_branches(64, 48, 64, 64, 96, 64)] * 3,
    inception_v2_reduction_branches(0, 384, 64, 96),
    *[inception_v2_b_branches(192, r, 192, r, 192, 192) for r in (128, 160, 160, 160, 192)],
    inception_v2_reduction_branches(192, 320, 192, 192),
    *[inception_v2_c_branches(320, 384, 384, 448, 384, 192)] * 2,
)


# Inception v3 as keras.applications.InceptionV3 builds it, in its layer order, so its weight
# files load: an unfactorized stem ending in 1x1/3x3 convolutions and pooling, 35x35 modules
# with a 5x5 branch, four 17x17 modules whose double branch starts with 7x1, and a 17x17 -> 8x8
# reduction with a factorized 7x7 branch.
def _v3_module_35(pool_proj):
    return (
        (Conv("1x1", 64),),
        (Conv("5x5_reduce", 48), Conv("5x5", 64, (5, 5))),
        (Conv("3x3dbl_reduce", 64), Conv("3x3dbl_1", 96, (3, 3)), Conv("3x3dbl_2", 96, (3, 3))),
        (Pool("pool", "avg"), Conv("pool_proj", pool_proj)),
    )


def _v3_module_17(r):
    return (
        (Conv("1x1", 192),),
        (Conv("7x7_reduce", r), Conv("7x7_1", r, (1, 7)), Conv("7x7_2", 192, (7, 1))),
        (
            Conv("7x7dbl_reduce", r),
            Conv("7x7dbl_1", r, (7, 1)),
            Conv("7x7dbl_2", r, (1, 7)),
            Conv("7x7dbl_3", r, (7, 1)),
            Conv("7x7dbl_4", 192, (1, 7)),
        ),
        (Pool("pool", "avg"), Conv("pool_proj", 192)),
    )


_V3_REDUCTION_17 = (
    (Conv("3x3_reduce", 192), Conv("3x3", 320, (3, 3), 2, "valid")),
    (
        Conv("7x7x3_reduce", 192),
        Conv("7x7x3_1", 192, (1, 7)),
        Conv("7x7x3_2", 192, (7, 1)),
        Conv("7x7x3_3", 192, (3, 3), 2, "valid"),
    ),
    (Pool("pool", "max", 3, 2, "valid"),),
)
V3_STEM = (
    Conv("1", 32, (3, 3), 2, "valid"),
    Conv("2", 32, (3, 3), 1, "valid"),
    Conv("3", 64, (3, 3), 1, "same"),
    Pool("pool1", "max", 3, 2, "valid"),
    Conv("4", 80, (1, 1), 1, "valid"),
    Conv("5", 192, (3, 3), 1, "valid"),
    Pool("pool2", "max", 3, 2, "valid"),
)
V3_BLOCKS = (
    _v3_module_35(32),
    _v3_module_35(64),
    _v3_module_35(64),
    inception_v2_reduction_branches(0, 384, 64, 96),
    *[_v3_module_17(r) for r in (128, 160, 160, 192)],
    _V3_REDUCTION_17,
    *[inception_v2_c_branches(320, 384, 384, 448, 384, 192)] * 2,
)

VERSIONS = {"v2": (V2_STEM, V2_BLOCKS), "v3": (V3_STEM, V3_BLOCKS)}


def _stem(x, steps):
    for step in steps:
        if isinstance(step, Pool):
            x = keras.layers.MaxPooling2D(
                step.size, strides=step.strides, padding=step.padding, name=f"stem_{step.name}"
            )(x)
            continue
        layers = conv_layers("stem", step, "bn")
        for suffix in ("conv", "bn", "relu"):
            x = layers[f"{step.name}_{suffix}"](x)
    return x


def inception(
    version="v2",
    num_classes=1000,
    input_shape=(299, 299, 3),
    include_top=True,
    weights=None,
    pooling=None,
    classifier_activation="softmax",
    preprocessing="tf",
    name=None,
):
    """Builds Inception v2 or v3 (Szegedy et al., "Rethinking the Inception Architecture", 2016).

    `"v2"` follows the paper's Table 1: a 7-layer stem (six 3x3 convolutions and a max
    pooling) to 35x35x288, three Figure-5 modules, a Figure-10 grid reduction to 17x17x768,
    five Figure-6 modules with n=7, a reduction to 8x8x1280, two Figure-7 modules to 8x8x2048,
    8x8 average pooling and a linear classifier. Every convolution is followed by batch
    normalization and ReLU: the paper's Table 3 calls "BN-auxiliary" the version "in which the
    fully connected layer of the auxiliary classifier is also batch-normalized, not just the
    convolutions". The auxiliary classifier itself is not built.

    `"v3"` is keras.applications.InceptionV3 layer for layer (same weights in the same order,
    so its weight files load), with our layer names and in-model preprocessing.

    Args:
        version: `"v2"` or `"v3"`.
        num_classes: number of classes of the classifier.
        input_shape: `(height, width, channels)`, at least 75x75.
        include_top: whether to add the classifier.
        weights: None, a local weights file (keras.applications' InceptionV3 ImageNet file
            loads into `"v3"`) or an MLflow model URI.
        pooling: global pooling when `include_top=False`: None, `"avg"` or `"max"`.
        classifier_activation: activation of the classifier.
        preprocessing: in-model preprocessing mode (`"tf"`: pixels to [-1, 1]), or None.
        name: model name; `f"inception_{version}"` when None.

    Returns:
        A `keras.Model` mapping `(batch, height, width, 3)` images in [0, 255] to
        `(batch, num_classes)`, or to features `(batch, h, w, 2048)` (`(batch, 2048)` with
        `pooling`) when `include_top=False`.
    """
    if version not in VERSIONS:
        raise ValueError(f"version must be one of {tuple(VERSIONS)}. Received: version={version!r}")
    check_head_args(include_top, num_classes, pooling)
    stem, blocks = VERSIONS[version]
    inputs, x = image_input(input_shape, preprocessing)
    x = _stem(x, stem)
    for index, branches in enumerate(blocks):
        prefix = f"mixed{index}"
        layers = make_block_layers(prefix, branches, "bn", output_name=prefix)
        x = apply_block(layers, branches, x)

    name = name or f"inception_{version}"
    if not include_top:
        return finish_model(inputs, global_pool(x, pooling), name, weights)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = keras.layers.Dense(
        num_classes, activation=classifier_activation, name="predictions"
    )(x)
    return finish_model(inputs, outputs, name, weights)


# 75x75 is the smallest input whose valid convolutions and reductions leave a 1x1 grid.
_TEST_OVERRIDES = {"input_shape": (75, 75, 3), "num_classes": 5}
register_model(
    "inception_v2",
    inception,
    task="classification",
    paper=PAPER,
    # Hand count from Table 1 and the widths above (tests/models/test_inception_v2.py).
    num_params=25_788_616,
    test_overrides=_TEST_OVERRIDES,
    version="v2",
)
register_model(
    "inception_v3",
    inception,
    task="classification",
    paper=PAPER,
    # keras.applications.InceptionV3(weights=None).count_params().
    num_params=23_851_784,
    test_overrides=_TEST_OVERRIDES,
    version="v3",
)
