"""LeNet-5 (LeCun, Bottou, Bengio and Haffner, 1998), in its modern and its original form."""

import keras

from kerascv_suite.layers.connection_table_conv2d import ConnectionTableConv2D
from kerascv_suite.layers.scaled_tanh import scaled_tanh
from kerascv_suite.layers.trainable_subsampling import TrainableSubsampling
from kerascv_suite.models.common import check_head_args, finish_model, global_pool, image_input
from kerascv_suite.models.registry import register_model

PAPER = (
    "Y. LeCun, L. Bottou, Y. Bengio, P. Haffner. Gradient-based learning applied to "
    "document recognition. Proceedings of the IEEE, 1998."
)

# Table I of the paper: the S2 maps each C3 map sees. Maps 0-5 take contiguous triples,
# 6-11 contiguous quadruples, 12-14 discontinuous quadruples, 15 all six maps.
LECUN_C3_TABLE = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (0, 4, 5), (0, 1, 5),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (0, 3, 4, 5), (0, 1, 4, 5), (0, 1, 2, 5),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)  # fmt: skip

C3_TABLES = {None: None, "lecun": LECUN_C3_TABLE}
SUBSAMPLINGS = ("max", "average", "trainable")
ACTIVATIONS = {"scaled_tanh": scaled_tanh}
# The paper maps the white background to -0.1 and the black foreground to 1.175, so the
# input has roughly zero mean and unit variance (section II-B); here 0 -> -0.1, 255 -> 1.175.
LECUN_SCALE, LECUN_OFFSET = 1.275 / 255.0, -0.1

VARIANTS = {
    "lenet5": dict(activation="relu", subsampling="max", c3_table=None, preprocessing="unit"),
    "lenet5_classic": dict(
        activation="scaled_tanh", subsampling="trainable", c3_table="lecun", preprocessing="lecun"
    ),
}


def _subsample(x, subsampling, activation, name):
    if subsampling == "max":
        return keras.layers.MaxPooling2D(2, name=name)(x)
    if subsampling == "average":
        return keras.layers.AveragePooling2D(2, name=name)(x)
    x = TrainableSubsampling(2, name=name)(x)
    return keras.layers.Activation(activation, name=f"{name}_act")(x)


def lenet5(
    num_classes=10,
    input_shape=(32, 32, 1),
    include_top=True,
    weights=None,
    pooling=None,
    classifier_activation="softmax",
    preprocessing="unit",
    activation="relu",
    subsampling="max",
    c3_table=None,
    name="lenet5",
):
    """Builds LeNet-5: C1 6@5x5, S2, C3 16@5x5, S4, C5 120@5x5, F6 84, output.

    With a `(32, 32, 1)` input the maps are 28, 14, 10, 5 and 1 pixels wide (paper Fig. 2).
    The paper's output layer of Euclidean RBF units with fixed weights is replaced by a
    dense layer with `classifier_activation` over `num_classes`.

    Args:
        num_classes: number of output classes.
        input_shape: `(height, width, channels)`; 32x32 makes C5 a 1x1 map as in the paper.
        include_top: whether to add the flatten, F6 and output layers; without them the
            model returns C5's `(batch, h, w, 120)` maps, pooled by `pooling`.
        weights: None, or a weights file / MLflow URI (see `load_weights`).
        pooling: None, `"avg"` or `"max"`, applied when `include_top=False`.
        classifier_activation: activation of the output layer.
        preprocessing: an `ImagePreprocessing` mode, `"lecun"` (the paper's input scaling,
            0 -> -0.1, 255 -> 1.175) or None.
        activation: a Keras activation or `"scaled_tanh"` (the paper's 1.7159 tanh(2a/3)),
            applied after every layer up to F6.
        subsampling: `"max"`, `"average"` or `"trainable"` (the paper's S2/S4: average
            pooling times a trainable coefficient plus a trainable bias per map, then
            `activation`).
        c3_table: None for a fully connected C3, or `"lecun"` for the paper's Table I.
        name: model name.

    Returns:
        A `keras.Model` mapping `(batch, 32, 32, 1)` images in [0, 255] to
        `(batch, num_classes)` probabilities.
    """
    check_head_args(include_top, num_classes, pooling)
    if subsampling not in SUBSAMPLINGS:
        raise ValueError(
            f"subsampling must be one of {SUBSAMPLINGS}. Received: subsampling={subsampling!r}"
        )
    if c3_table not in C3_TABLES:
        raise ValueError(
            f"c3_table must be one of {tuple(C3_TABLES)}. Received: c3_table={c3_table!r}"
        )
    act = ACTIVATIONS.get(activation, activation)

    # === Stem ===
    if preprocessing == "lecun":
        inputs = keras.Input(shape=tuple(input_shape), name="image")
        x = keras.layers.Rescaling(LECUN_SCALE, offset=LECUN_OFFSET, name="preprocessing")(inputs)
    else:
        inputs, x = image_input(input_shape, preprocessing)

    # === Feature extractor ===
    x = keras.layers.Conv2D(6, 5, activation=act, name="c1")(x)
    x = _subsample(x, subsampling, act, "s2")
    if c3_table is None:
        x = keras.layers.Conv2D(16, 5, activation=act, name="c3")(x)
    else:
        x = ConnectionTableConv2D(C3_TABLES[c3_table], 5, name="c3")(x)
        x = keras.layers.Activation(act, name="c3_act")(x)
    x = _subsample(x, subsampling, act, "s4")
    x = keras.layers.Conv2D(120, 5, activation=act, name="c5")(x)

    # === Head ===
    if include_top:
        x = keras.layers.Flatten(name="flatten")(x)
        x = keras.layers.Dense(84, activation=act, name="f6")(x)
        x = keras.layers.Dense(num_classes, activation=classifier_activation, name="predictions")(x)
    else:
        x = global_pool(x, pooling)
    return finish_model(inputs, x, name, weights)


# Parameter counts (Keras counting), by hand from the layer shapes:
#   C1 6*(5*5*1+1)=156, C5 120*(5*5*16+1)=48,120, F6 84*(120+1)=10,164, output 10*(84+1)=850.
#   lenet5: full C3 16*(5*5*6+1)=2,416, pooling has none: 156+2,416+48,120+10,164+850=61,706.
#   lenet5_classic: paper section II-B gives C1 156, S2 12, C3 1,516, S4 32, C5 48,120,
#   F6 10,164 (60,000 "trainable free parameters"), plus our 850-parameter output = 60,850.
_NUM_PARAMS = {"lenet5": 61_706, "lenet5_classic": 60_850}

for _name, _config in VARIANTS.items():
    register_model(
        _name,
        lenet5,
        task="classification",
        paper=PAPER,
        num_params=_NUM_PARAMS[_name],
        test_overrides={"num_classes": 5},
        **_config,
    )
