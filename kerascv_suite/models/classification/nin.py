"""Network In Network (Lin, Chen and Yan, 2013): mlpconv blocks and global average pooling."""

import keras

from kerascv_suite.models.common import check_head_args, finish_model, global_pool, image_input
from kerascv_suite.models.registry import register_model

PAPER = "M. Lin, Q. Chen, S. Yan. Network In Network. ICLR 2014 (arXiv:1312.4400, 2013)."

# Each mlpconv block: (filters, kernel, stride, cccp1 filters, cccp2 filters, then).
# `then` is what follows the block: ("max"|"avg", padding) pooling 3x3/2, optionally
# followed by dropout, or None for the last block. A cccp2 of None is the classifier:
# num_classes 1x1 maps. Pooling pads "same" where Caffe's ceil-mode pooling yields one
# more row than "valid" (54 -> 27 and 32 -> 16 -> 8), keeping the reference map sizes.
CONFIGS = {
    # The ImageNet model of the authors' Caffe model zoo release, 224x224 input:
    # maps 54 -> 27 -> 13 -> 6, then global average pooling.
    "imagenet": (
        (96, 11, 4, 96, 96, ("max", "same", False)),
        (256, 5, 1, 256, 256, ("max", "valid", False)),
        (384, 3, 1, 384, 384, ("max", "valid", True)),
        (1024, 3, 1, 1024, None, None),
    ),
    # The paper's CIFAR-10 model (section 4.2; the authors' cifar10 Caffe definition):
    # 32 -> 16 -> 8, dropout after the first two mlpconv layers, global average pooling.
    "cifar": (
        (192, 5, 1, 160, 96, ("max", "same", True)),
        (192, 5, 1, 192, 192, ("avg", "same", True)),
        (192, 3, 1, 192, None, None),
    ),
}  # fmt: skip


def _conv(x, filters, kernel, stride, name):
    return keras.layers.Conv2D(
        filters, kernel, strides=stride, padding="valid" if stride > 1 else "same",
        activation="relu", name=name,
    )(x)  # fmt: skip


def nin(
    num_classes=1000,
    input_shape=(224, 224, 3),
    include_top=True,
    weights=None,
    pooling=None,
    classifier_activation="softmax",
    preprocessing="caffe",
    config="imagenet",
    dropout=0.5,
    name=None,
):
    """Builds a Network In Network: mlpconv blocks, no fully connected layer.

    Each mlpconv block is a kxk convolution followed by two 1x1 convolutions ("cascaded
    cross channel parametric pooling"), all with ReLU. The last block's second 1x1
    convolution has `num_classes` maps; their global averages go through the classifier
    activation (section 3.2). As in the authors' Caffe definitions, that convolution keeps
    its ReLU.

    Args:
        num_classes: number of output classes.
        input_shape: `(height, width, channels)`; `"imagenet"` needs at least 59x59,
            `"cifar"` (all "same" poolings) takes any size.
        include_top: whether to add the classifier 1x1 convolution, global average
            pooling and activation; without them the model returns the last block's
            `(batch, h, w, channels)` maps after its first 1x1 convolution, pooled by
            `pooling`.
        weights: None, or a weights file / MLflow URI (see `load_weights`).
        pooling: None, `"avg"` or `"max"`, applied when `include_top=False`.
        classifier_activation: activation of the `predictions` layer.
        preprocessing: an `ImagePreprocessing` mode or None. `nin` uses `"caffe"` (the
            Caffe release subtracts the ImageNet mean); `nin_cifar` uses `"tf"` ([-1, 1]),
            since the paper's global contrast normalization and ZCA whitening need
            data set statistics that a layer of the model cannot know.
        config: `"imagenet"` or `"cifar"`.
        dropout: dropout rate where the config places dropout (0.5 in the paper).
        name: model name; defaults to `"nin"` / `"nin_cifar"`.

    Returns:
        A `keras.Model` mapping `(batch, height, width, 3)` images in [0, 255] to
        `(batch, num_classes)` probabilities.
    """
    check_head_args(include_top, num_classes, pooling)
    if config not in CONFIGS:
        raise ValueError(f"config must be one of {tuple(CONFIGS)}. Received: config={config!r}")
    blocks = CONFIGS[config]

    # === Feature extractor ===
    inputs, x = image_input(input_shape, preprocessing)
    for index, (filters, kernel, stride, cccp1, cccp2, then) in enumerate(blocks, start=1):
        prefix = f"mlpconv{index}"
        x = _conv(x, filters, kernel, stride, f"{prefix}_conv")
        x = _conv(x, cccp1, 1, 1, f"{prefix}_cccp1")
        if cccp2 is None:
            break
        x = _conv(x, cccp2, 1, 1, f"{prefix}_cccp2")
        kind, padding, use_dropout = then
        pool = keras.layers.MaxPooling2D if kind == "max" else keras.layers.AveragePooling2D
        x = pool(3, strides=2, padding=padding, name=f"pool{index}")(x)
        if use_dropout and dropout:
            x = keras.layers.Dropout(dropout, name=f"dropout{index}")(x)

    # === Head ===
    if include_top:
        x = _conv(x, num_classes, 1, 1, f"{prefix}_cccp2")
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = keras.layers.Activation(classifier_activation, name="predictions")(x)
    else:
        x = global_pool(x, pooling)
    return finish_model(inputs, x, name or _NAMES[config], weights)


_NAMES = {"imagenet": "nin", "cifar": "nin_cifar"}
# Parameters (Keras counting: weights + biases), by hand; no reference publishes them.
#   nin (1000 classes): 11*11*3*96+96 = 34,944; 2 * (96*96+96) = 18,624; 5*5*96*256+256 =
#   614,656; 2 * (256*256+256) = 131,584; 3*3*256*384+384 = 885,120; 2 * (384*384+384) =
#   295,680; 3*3*384*1024+1024 = 3,539,968; 1024*1024+1024 = 1,049,600; 1024*1000+1000 =
#   1,025,000 -> 7,595,176.
#   nin_cifar (10 classes): 5*5*3*192+192 = 14,592; 192*160+160 = 30,880; 160*96+96 =
#   15,456; 5*5*96*192+192 = 460,992; 2 * (192*192+192) = 74,112; 3*3*192*192+192 =
#   331,968; 192*192+192 = 37,056; 192*10+10 = 1,930 -> 966,986.
_VARIANTS = {
    "nin": dict(config="imagenet", num_params=7_595_176, num_classes=1000,
                input_shape=(224, 224, 3), preprocessing="caffe", test_shape=(59, 59, 3)),
    "nin_cifar": dict(config="cifar", num_params=966_986, num_classes=10,
                      input_shape=(32, 32, 3), preprocessing="tf", test_shape=(16, 16, 3)),
}  # fmt: skip

for _name, _variant in _VARIANTS.items():
    register_model(
        _name,
        nin,
        task="classification",
        paper=PAPER,
        num_params=_variant["num_params"],
        test_overrides={"input_shape": _variant["test_shape"], "num_classes": 5},
        config=_variant["config"],
        num_classes=_variant["num_classes"],
        input_shape=_variant["input_shape"],
        preprocessing=_variant["preprocessing"],
    )
