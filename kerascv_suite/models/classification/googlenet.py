"""GoogLeNet (Inception v1).

Szegedy, Liu, Jia, Sermanet, Reed, Anguelov, Erhan, Vanhoucke and Rabinovich, "Going Deeper
with Convolutions", CVPR 2015. `googlenet_tv` is torchvision's layout of it (batch
normalization, 3x3 convolutions in the "5x5" branch), whose checkpoints map onto it exactly.
"""

import dataclasses

import keras

from kerascv_suite.layers.inception_module import (
    Conv,
    Pool,
    apply_block,
    inception_v1_branches,
    make_block_layers,
)
from kerascv_suite.layers.local_response_normalization import LocalResponseNormalization
from kerascv_suite.models.common import check_head_args, finish_model, global_pool, image_input
from kerascv_suite.models.registry import register_model

PAPER = "Szegedy et al., Going Deeper with Convolutions, CVPR 2015 (arXiv:1409.4842)"
TORCHVISION_LAYOUT = (
    f"{PAPER}; in torchvision 0.28's layout (torchvision/models/googlenet.py: BasicConv2d = "
    "conv without bias + BatchNorm2d(eps=0.001) + ReLU, 3x3 convolutions in the '5x5' branch, "
    "ceil-mode max poolings, dropout 0.2)"
)
LAYOUTS = ("paper", "torchvision")
# torchvision's BasicConv2d: BatchNorm2d(out_channels, eps=0.001).
TORCHVISION_BN_EPSILON = 1e-3

# Table 1 of the paper: #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj.
INCEPTION_FILTERS = {
    "3a": (64, 96, 128, 16, 32, 32),
    "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64),
    "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}
# Inception stages that a stride-2 max pooling follows, and the stages feeding the auxiliary
# classifiers (section 5: "on top of the output of the Inception (4a) and (4d) modules").
POOL_AFTER = {"3b": "pool3_3x3_s2", "4e": "pool4_3x3_s2"}
AUX_AFTER = {"4a": "aux1", "4d": "aux2"}


def _lrn(name):
    # The paper gives no LRN constants; these are the BVLC reference GoogLeNet's (Caffe
    # models/bvlc_googlenet/train_val.prototxt: local_size 5, alpha 1e-4, beta 0.75, k 1).
    return LocalResponseNormalization(
        size=5, alpha=1e-4, beta=0.75, k=1.0, alpha_convention="caffe", name=name
    )


def inception_block(x, name, filters):
    """Applies the Inception module `inception_{name}` of Table 1 (flat core layers)."""
    prefix = f"inception_{name}"
    branches = inception_v1_branches(*filters)
    return apply_block(make_block_layers(prefix, branches, "relu"), branches, x)


def auxiliary_classifier(x, name, num_classes, classifier_activation):
    """The side classifier of section 5 of the paper, for training only.

    5x5/3 average pooling (4x4 output at 224x224 input), 1x1 convolution with 128 filters and
    ReLU, a 1024-unit fully connected layer with ReLU, 70% dropout and a linear classifier.
    """
    x = keras.layers.AveragePooling2D(5, strides=3, name=f"{name}_avg_pool")(x)
    x = keras.layers.Conv2D(128, 1, activation="relu", name=f"{name}_conv")(x)
    x = keras.layers.Flatten(name=f"{name}_flatten")(x)
    x = keras.layers.Dense(1024, activation="relu", name=f"{name}_fc")(x)
    x = keras.layers.Dropout(0.7, name=f"{name}_dropout")(x)
    return keras.layers.Dense(
        num_classes, activation=classifier_activation, name=f"{name}_predictions"
    )(x)


def conv_bn_relu(x, filters, kernel, name, strides=1, padding="same"):
    """torchvision's `BasicConv2d`: a convolution without bias, BatchNormalization (epsilon
    1e-3) and ReLU, named `{name}_conv`, `{name}_bn`, `{name}_relu`."""
    x = keras.layers.Conv2D(
        filters, kernel, strides=strides, padding=padding, use_bias=False, name=f"{name}_conv"
    )(x)
    x = keras.layers.BatchNormalization(epsilon=TORCHVISION_BN_EPSILON, name=f"{name}_bn")(x)
    return keras.layers.Activation("relu", name=f"{name}_relu")(x)


def ceil_max_pool(x, size, strides, name):
    """torch's `MaxPool2d(size, strides, ceil_mode=True)` on non-negative maps (after ReLU).

    Ceil mode keeps a last, partial window: `ceil((n - size) / strides) + 1` outputs. Zero
    padding of `strides - 1` rows and columns at the bottom and right, then a "valid"
    pooling, gives exactly those windows, and the zeros never win a max over values >= 0.
    ("same" pooling would centre the windows differently on odd sizes.)
    """
    extra = strides - 1
    if extra:
        x = keras.layers.ZeroPadding2D(((0, extra), (0, extra)), name=f"{name}_pad")(x)
    return keras.layers.MaxPooling2D(size, strides=strides, name=name)(x)


def torchvision_inception_branches(filters):
    """torchvision's Inception branches for Table 1's filter columns: the paper's module with
    a 3x3 convolution in place of the 5x5 (torchvision/models/googlenet.py, `Inception`)."""
    branches = inception_v1_branches(*filters)
    return tuple(
        tuple(dataclasses.replace(step, kernel=(3, 3)) if getattr(step, "name", "") == "5x5"
              else step for step in branch)
        for branch in branches
    )  # fmt: skip


def torchvision_inception_block(x, name, filters):
    """Applies torchvision's Inception module `inception_{name}` (conv + BN + ReLU units)."""
    prefix = f"inception_{name}"
    outputs = []
    for branch in torchvision_inception_branches(filters):
        y = x
        for step in branch:
            if isinstance(step, Conv):
                y = conv_bn_relu(y, step.filters, step.kernel, f"{prefix}_{step.name}")
            elif isinstance(step, Pool):
                # MaxPool2d(3, stride=1, padding=1, ceil_mode=True) is a "same" 3x3 pooling.
                y = keras.layers.MaxPooling2D(
                    step.size, strides=step.strides, padding=step.padding,
                    name=f"{prefix}_{step.name}",
                )(y)  # fmt: skip
        outputs.append(y)
    return keras.layers.Concatenate(name=f"{prefix}_output")(outputs)


def torchvision_googlenet_features(x):
    """torchvision's GoogLeNet up to inception 5b: `(batch, h, w, 3)` -> `(batch, ceil(h/32),
    ceil(w/32), 1024)` at sizes divisible by 32.

    Stem conv 7x7/2 (padding 3), ceil-mode max pool 3x3/2, conv 1x1 (64), conv 3x3 (192),
    max pool 3x3/2; Inception 3a-3b, max pool 3x3/2, 4a-4e, max pool 2x2/2, 5a-5b. No LRN;
    every convolution is `conv_bn_relu`.
    """
    x = keras.layers.ZeroPadding2D(3, name="conv1_7x7_s2_pad")(x)
    x = conv_bn_relu(x, 64, 7, "conv1_7x7_s2", strides=2, padding="valid")
    x = ceil_max_pool(x, 3, 2, "pool1_3x3_s2")
    x = conv_bn_relu(x, 64, 1, "conv2_3x3_reduce")
    x = conv_bn_relu(x, 192, 3, "conv2_3x3")
    x = ceil_max_pool(x, 3, 2, "pool2_3x3_s2")
    pools = {"3b": (3, "pool3_3x3_s2"), "4e": (2, "pool4_2x2_s2")}
    for stage, filters in INCEPTION_FILTERS.items():
        x = torchvision_inception_block(x, stage, filters)
        if stage in pools:
            size, pool_name = pools[stage]
            x = ceil_max_pool(x, size, 2, pool_name)
    return x


def googlenet(
    num_classes=1000,
    input_shape=(224, 224, 3),
    include_top=True,
    weights=None,
    pooling=None,
    classifier_activation="softmax",
    preprocessing="caffe",
    aux_classifiers=False,
    dropout=0.4,
    layout="paper",
    name="googlenet",
):
    """Builds GoogLeNet (Szegedy et al., "Going Deeper with Convolutions", 2015, Table 1).

    The stem is conv 7x7/2 (64), max pool 3x3/2, LRN, conv 1x1 (64), conv 3x3 (192), LRN, max
    pool 3x3/2; then Inception modules 3a-3b, max pool, 4a-4e, max pool, 5a-5b, global average
    pooling (the paper's 7x7/1 average pooling at 224x224 input), 40% dropout and a linear
    classifier. Convolutions have biases and ReLU; there is no batch normalization. Pooling
    uses `"same"` padding so a 224x224 input gives the 112/56/28/14/7 grids of Table 1.

    Auxiliary classifiers (section 5) sit on inception 4a and 4d. With `aux_classifiers=True`
    the model returns a dict `{"predictions", "aux1", "aux2"}`, each `(batch, num_classes)`;
    the paper adds the auxiliary losses with weight 0.3 and discards them at inference:

        model.compile(
            optimizer="sgd",
            loss={k: "sparse_categorical_crossentropy" for k in ("predictions", "aux1", "aux2")},
            loss_weights={"predictions": 1.0, "aux1": 0.3, "aux2": 0.3},
        )

    Their flattened 4x4x128 features tie the model to one input size: the auxiliary heads need
    an input of at least 65x65 (inception 4a is `ceil(size / 16)` wide and the 5x5 pooling
    needs 5).

    Args:
        num_classes: number of classes of the classifier(s).
        input_shape: `(height, width, channels)`.
        include_top: whether to add the classifier; `aux_classifiers` requires it.
        weights: None, a local weights file or an MLflow model URI.
        pooling: global pooling when `include_top=False`: None, `"avg"` or `"max"`.
        classifier_activation: activation of the classifier(s).
        preprocessing: in-model preprocessing mode (`"caffe"`: BGR mean subtraction, as the
            BVLC reference model was trained), or None.
        aux_classifiers: add the two auxiliary classifiers and return a dict of outputs.
        dropout: dropout rate before the main classifier (the paper's 40%).
        layout: `"paper"`, or `"torchvision"` for torchvision's GoogLeNet (see
            `torchvision_googlenet_features`; no auxiliary classifiers: torchvision drops
            them in eval and its checkpoint's are untrained).
        name: model name.

    Returns:
        A `keras.Model` mapping `(batch, height, width, 3)` images in [0, 255] to
        `(batch, num_classes)` (or the dict above), or to features `(batch, h, w, 1024)`
        (`(batch, 1024)` with `pooling`) when `include_top=False`.
    """
    check_head_args(include_top, num_classes, pooling)
    if aux_classifiers and not include_top:
        raise ValueError(
            "aux_classifiers=True needs the classifier; set include_top=True. "
            f"Received: aux_classifiers={aux_classifiers!r}, include_top={include_top!r}"
        )
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}. Received: layout={layout!r}")
    if aux_classifiers and layout == "torchvision":
        raise ValueError(
            "The torchvision layout has no auxiliary classifiers (torchvision drops them in "
            "eval; its checkpoint's are untrained); use googlenet_aux to train with them. "
            f"Received: aux_classifiers={aux_classifiers!r}, layout={layout!r}"
        )
    inputs, x = image_input(input_shape, preprocessing)
    aux_outputs = {}
    if layout == "torchvision":
        x = torchvision_googlenet_features(x)
    else:
        x = keras.layers.Conv2D(
            64, 7, strides=2, padding="same", activation="relu", name="conv1_7x7_s2"
        )(x)
        x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="pool1_3x3_s2")(x)
        x = _lrn("pool1_norm1")(x)
        x = keras.layers.Conv2D(64, 1, activation="relu", name="conv2_3x3_reduce")(x)
        x = keras.layers.Conv2D(192, 3, padding="same", activation="relu", name="conv2_3x3")(x)
        x = _lrn("conv2_norm2")(x)
        x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="pool2_3x3_s2")(x)

        for stage, filters in INCEPTION_FILTERS.items():
            x = inception_block(x, stage, filters)
            if aux_classifiers and stage in AUX_AFTER:
                head = AUX_AFTER[stage]
                aux_outputs[head] = auxiliary_classifier(
                    x, head, num_classes, classifier_activation
                )
            if stage in POOL_AFTER:
                x = keras.layers.MaxPooling2D(
                    3, strides=2, padding="same", name=POOL_AFTER[stage]
                )(x)

    if not include_top:
        return finish_model(inputs, global_pool(x, pooling), name, weights)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    outputs = keras.layers.Dense(
        num_classes, activation=classifier_activation, name="predictions"
    )(x)
    if aux_classifiers:
        outputs = {"predictions": outputs, **aux_outputs}
    return finish_model(inputs, outputs, name, weights)


# Auxiliary heads are off by default: they only serve training (the paper discards them at
# inference), and a single-tensor output is what predict(), evaluation, export and transfer
# learning expect. `googlenet_aux` is the paper's training configuration.
register_model(
    "googlenet",
    googlenet,
    task="classification",
    paper=PAPER,
    # Table 1 by hand: 6,990,272 weights + 8,280 biases (tests/models/test_googlenet.py).
    num_params=6_998_552,
    test_overrides={"input_shape": (32, 32, 3), "num_classes": 5},
)
register_model(
    "googlenet_aux",
    googlenet,
    task="classification",
    paper=PAPER,
    # googlenet plus two heads of 3,188,840 and 3,190,888 parameters (section 5).
    num_params=13_378_280,
    # 65x65 is the smallest input the auxiliary heads' 5x5 pooling allows (see the docstring).
    test_overrides={"input_shape": (65, 65, 3), "num_classes": 5},
    aux_classifiers=True,
)

# torchvision 0.28's googlenet(): trainable parameters 6,624,904 = torchvision's
# GoogLeNet_Weights.IMAGENET1K_V1.meta["num_params"] (without the auxiliary heads; gamma and
# beta of 7,280 BN channels among them); Keras counting adds the BN moving mean and variance:
# + 2 * 7,280 = 6,639,464 (tests/models/test_googlenet.py). Its weights were
# trained with `transform_input=True`: torchvision's ImageNet normalization, then the model
# maps it back to `x / 127.5 - 1` per channel, which is our "tf" preprocessing.
register_model(
    "googlenet_tv",
    googlenet,
    task="classification",
    paper=TORCHVISION_LAYOUT,
    num_params=6_639_464,
    test_overrides={"input_shape": (32, 32, 3), "num_classes": 5},
    layout="torchvision",
    dropout=0.2,
    preprocessing="tf",
    name="googlenet_tv",
)
