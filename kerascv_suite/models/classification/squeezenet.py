"""SqueezeNet 1.0 and 1.1: one builder, variants as data.

Iandola, Han, Moskewicz, Ashraf, Dally, Keutzer, "SqueezeNet: AlexNet-level accuracy with
50x fewer parameters and <0.5MB model size", 2016. Layouts follow torchvision's
`squeezenet1_0` / `squeezenet1_1` (1.1 is the Caffe "v1.1" release: 3x3/2 stem with 64
filters and earlier pooling); layer names follow the Caffe release (`fire2_squeeze1x1`, ...).
"""

import keras

from kerascv_suite.layers.fire_module import apply_fire_module, fire_module_layers
from kerascv_suite.models.common import check_head_args, finish_model, global_pool, image_input
from kerascv_suite.models.registry import register_model

PAPER = (
    "Iandola, Han, Moskewicz, Ashraf, Dally, Keutzer, 'SqueezeNet: AlexNet-level accuracy "
    "with 50x fewer parameters and <0.5MB model size', 2016"
)

# Fire modules fire2..fire9 as (squeeze, expand1x1, expand3x3): the same in both versions.
FIRES = (
    (16, 64, 64), (16, 64, 64), (32, 128, 128), (32, 128, 128),
    (48, 192, 192), (48, 192, 192), (64, 256, 256), (64, 256, 256),
)
# Stem (filters, kernel) of the stride-2 conv1 (max pooling `pool1` always follows it) and the
# fire modules after which a 3x3/2 max pooling follows.
CONFIGS = {
    "1_0": dict(stem=(96, 7), pool_after=(4, 8)),
    "1_1": dict(stem=(64, 3), pool_after=(3, 5)),
}


def _max_pool_ceil(x, name):
    """3x3/2 max pooling with Caffe/torchvision's ceil rounding.

    One row/column of zeros at the bottom/right gives the ceil-mode output size, and the
    values are unchanged because the inputs follow a ReLU (>= 0) and every window still
    holds at least one real input.
    """
    x = keras.layers.ZeroPadding2D(((0, 1), (0, 1)), name=f"{name}_pad")(x)
    return keras.layers.MaxPooling2D(3, strides=2, name=name)(x)


def squeezenet(
    version="1_0",
    dropout=0.5,
    num_classes=1000,
    input_shape=(224, 224, 3),
    include_top=True,
    weights=None,
    pooling=None,
    classifier_activation="softmax",
    preprocessing="torch",
    name=None,
):
    """Builds a SqueezeNet classifier or backbone.

    Args:
        version: `"1_0"` or `"1_1"`.
        dropout: dropout rate before `conv10` (0.5 in the paper).
        num_classes: output channels of `conv10`, the 1x1 convolution that classifies.
        input_shape: `(height, width, 3)`; at least 32x32.
        include_top: whether to end with dropout, `conv10`, ReLU, global average pooling and
            the `predictions` activation.
        weights: None, a local weights file or an MLflow model URI.
        pooling: `None`, `"avg"` or `"max"`, used when `include_top=False`.
        classifier_activation: activation of `predictions`; None returns the pooled scores.
        preprocessing: in-model preprocessing mode (`"torch"`, as torchvision's weights).
        name: model name; None gives `squeezenet1_0` / `squeezenet1_1`.

    Returns:
        A `keras.Model` mapping `(batch, height, width, 3)` RGB images in [0, 255] to
        `(batch, num_classes)`, or to `(batch, h, w, 512)` features when `include_top=False`.
    """
    check_head_args(include_top, num_classes, pooling)
    if version not in CONFIGS:
        raise ValueError(
            f"version must be one of {tuple(CONFIGS)}. Received: version={version!r}"
        )
    config = CONFIGS[version]
    name = name or f"squeezenet{version}"

    inputs, x = image_input(input_shape, preprocessing)
    filters, kernel = config["stem"]
    x = keras.layers.Conv2D(filters, kernel, strides=2, name="conv1")(x)
    x = keras.layers.Activation("relu", name="relu_conv1")(x)
    x = _max_pool_ceil(x, "pool1")
    for index, (squeeze, e1, e3) in enumerate(FIRES, start=2):
        x = apply_fire_module(fire_module_layers(squeeze, e1, e3, name=f"fire{index}"), x)
        if index in config["pool_after"]:
            x = _max_pool_ceil(x, f"pool{index}")

    if include_top:
        x = keras.layers.Dropout(dropout, name="drop9")(x)
        x = keras.layers.Conv2D(num_classes, 1, name="conv10")(x)
        x = keras.layers.Activation("relu", name="relu_conv10")(x)
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        if classifier_activation is not None:
            x = keras.layers.Activation(classifier_activation, name="predictions")(x)
    else:
        x = global_pool(x, pooling)
    return finish_model(inputs, x, name, weights)


# num_params: Keras counting at 224x224, 1000 classes; equal to torchvision's
# squeezenet1_0 (1,248,424) and squeezenet1_1 (1,235,496) (no BN; conv biases in both).
for _version, _num_params in (("1_0", 1_248_424), ("1_1", 1_235_496)):
    register_model(
        f"squeezenet{_version}",
        squeezenet,
        task="classification",
        paper=PAPER,
        num_params=_num_params,
        test_overrides={"input_shape": (32, 32, 3), "num_classes": 5},
        version=_version,
    )
