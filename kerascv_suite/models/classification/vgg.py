"""VGG (Simonyan & Zisserman, 2014): configurations A, A-LRN, B, C, D and E of Table 1.

The `*_bn` variants (`vgg11_bn` ... `vgg19_bn`) add batch normalization after every
convolution (conv -> BN -> ReLU) as torchvision 0.28's `vgg11_bn` ... `vgg19_bn`
(torchvision/models/vgg.py `make_layers(cfg, batch_norm=True)`), so its checkpoints map onto
them exactly (`kerascv_suite.weights`, layout "vgg").
"""

import keras

from kerascv_suite.layers.local_response_normalization import LocalResponseNormalization
from kerascv_suite.models.common import check_head_args, finish_model, global_pool, image_input
from kerascv_suite.models.registry import register_model

PAPER = (
    "K. Simonyan, A. Zisserman. Very Deep Convolutional Networks for Large-Scale Image "
    "Recognition. ICLR 2015 (arXiv:1409.1556, 2014)."
)

# Table 1 of the paper, written in its own notation: "conv{k}-{filters}" is a kxk ReLU
# convolution with stride 1 and "same" padding, "LRN" a local response normalization.
# Each tuple is a block; every block ends with a 2x2/2 max pooling.
_C64, _C128, _C256, _C512 = "conv3-64", "conv3-128", "conv3-256", "conv3-512"
CONFIGS = {
    "A": ((_C64,), (_C128,), (_C256,) * 2, (_C512,) * 2, (_C512,) * 2),
    "A-LRN": ((_C64, "LRN"), (_C128,), (_C256,) * 2, (_C512,) * 2, (_C512,) * 2),
    "B": ((_C64,) * 2, (_C128,) * 2, (_C256,) * 2, (_C512,) * 2, (_C512,) * 2),
    "C": (
        (_C64,) * 2,
        (_C128,) * 2,
        (_C256, _C256, "conv1-256"),
        (_C512, _C512, "conv1-512"),
        (_C512, _C512, "conv1-512"),
    ),
    "D": ((_C64,) * 2, (_C128,) * 2, (_C256,) * 3, (_C512,) * 3, (_C512,) * 3),
    "E": ((_C64,) * 2, (_C128,) * 2, (_C256,) * 4, (_C512,) * 4, (_C512,) * 4),
}
# keras.applications' model names for the configurations it ships.
MODEL_NAMES = {"A": "vgg11", "A-LRN": "vgg11_lrn", "B": "vgg13", "C": "vgg16_c",
               "D": "vgg16", "E": "vgg19"}  # fmt: skip
BN_PAPER = (
    f"{PAPER} Batch normalization after each convolution as torchvision 0.28 "
    "torchvision/models/vgg.py (make_layers with batch_norm=True); S. Ioffe, C. Szegedy, "
    "Batch Normalization, ICML 2015 (arXiv:1502.03167)."
)
# torch.nn.BatchNorm2d's default epsilon, which torchvision's VGG keeps.
BN_EPSILON = 1e-5
# "the LRN layer parameters are those of (Krizhevsky et al., 2012)" (section 2.3).
LRN_ARGS = dict(size=5, alpha=1e-4, beta=0.75, k=2.0, alpha_convention="paper")


def parse_conv(entry):
    """`(filters, kernel_size)` of a configuration entry: `"conv3-64"` -> `(64, 3)`.

    The paper's notation (Table 1): `conv<receptive field size>-<number of channels>`.
    """
    kind, filters = entry.split("-")
    return int(filters), int(kind[len("conv") :])


def vgg(
    num_classes=1000,
    input_shape=(224, 224, 3),
    include_top=True,
    weights=None,
    pooling=None,
    classifier_activation="softmax",
    preprocessing="caffe",
    config="D",
    dropout=0.5,
    batch_norm=False,
    name=None,
):
    """Builds a VGG network of one of the paper's configurations.

    Layer names and order are those of `keras.applications.VGG16` / `VGG19`
    (`block1_conv1` ... `block5_pool`, `flatten`, `fc1`, `fc2`, `predictions`), so their
    weight files (`.weights.h5` and legacy whole-model `.h5`) load into configurations D
    and E as they are. The default `"caffe"` preprocessing is
    `keras.applications.vgg16.preprocess_input` inside the model.

    Args:
        num_classes: number of output classes.
        input_shape: `(height, width, channels)`; at least 32x32 (five 2x2 poolings).
        include_top: whether to add flatten, fc1, fc2 (4096 each) and the classifier;
            without them the model returns `block5_pool`'s `(batch, h/32, w/32, 512)` maps,
            pooled by `pooling`.
        weights: None, or a weights file / MLflow URI (see `load_weights`).
        pooling: None, `"avg"` or `"max"`, applied when `include_top=False`.
        classifier_activation: activation of the `predictions` layer.
        preprocessing: an `ImagePreprocessing` mode or None.
        config: `"A"`, `"A-LRN"`, `"B"`, `"C"`, `"D"` or `"E"` (paper Table 1).
        dropout: dropout rate after fc1 and fc2 (0.5 in the paper, section 3.1); 0 leaves
            the dropout layers out, giving exactly keras.applications' layer list.
        batch_norm: a `BatchNormalization` (epsilon `BN_EPSILON`) between each convolution
            and its ReLU, named `block{b}_bn{i}` beside `block{b}_conv{i}` and
            `block{b}_relu{i}`: torchvision's `vgg*_bn` (not in the paper).
        name: model name; defaults to `MODEL_NAMES[config]` (e.g. `"vgg16"`), with `"_bn"`
            appended when `batch_norm`.

    Returns:
        A `keras.Model` mapping `(batch, height, width, 3)` RGB images in [0, 255] to
        `(batch, num_classes)` probabilities.
    """
    check_head_args(include_top, num_classes, pooling)
    if config not in CONFIGS:
        raise ValueError(f"config must be one of {tuple(CONFIGS)}. Received: config={config!r}")

    # === Feature extractor ===
    inputs, x = image_input(input_shape, preprocessing)
    for block, entries in enumerate(CONFIGS[config], start=1):
        conv_index = 0
        for entry in entries:
            if entry == "LRN":
                x = LocalResponseNormalization(**LRN_ARGS, name=f"block{block}_lrn")(x)
                continue
            conv_index += 1
            filters, kernel = parse_conv(entry)
            x = keras.layers.Conv2D(
                filters, kernel, activation=None if batch_norm else "relu", padding="same",
                name=f"block{block}_conv{conv_index}",
            )(x)  # fmt: skip
            if batch_norm:
                x = keras.layers.BatchNormalization(
                    epsilon=BN_EPSILON, name=f"block{block}_bn{conv_index}"
                )(x)
                x = keras.layers.Activation("relu", name=f"block{block}_relu{conv_index}")(x)
        x = keras.layers.MaxPooling2D(2, strides=2, name=f"block{block}_pool")(x)

    # === Head ===
    if include_top:
        x = keras.layers.Flatten(name="flatten")(x)
        for index in (1, 2):
            x = keras.layers.Dense(4096, activation="relu", name=f"fc{index}")(x)
            if dropout:
                x = keras.layers.Dropout(dropout, name=f"fc{index}_dropout")(x)
        x = keras.layers.Dense(num_classes, activation=classifier_activation, name="predictions")(x)
    else:
        x = global_pool(x, pooling)
    default_name = MODEL_NAMES[config] + ("_bn" if batch_norm else "")
    return finish_model(inputs, x, name or default_name, weights)


# Parameters at 224x224 with 1000 classes (Keras counting). D and E are keras.applications'
# VGG16 (138,357,544) and VGG19 (143,667,240). A, B: by hand, paper Table 2 rounds them to
# 133M. Head for all: fc1 7*7*512*4096+4096 = 102,764,544, fc2 16,781,312, predictions
# 4,097,000 = 123,642,856.
#   A: convs 3*3*3*64+64=1,792; 3*3*64*128+128=73,856; 295,168 + 590,080 (256s); 1,180,160 +
#      2,359,808 (block4); 2*2,359,808 (block5) -> 9,220,480 -> 132,863,336. A-LRN: the same.
#   B: A + block1_conv2 (3*3*64*64+64=36,928) + block2_conv2 (3*3*128*128+128=147,584)
#      -> 133,047,848.
#   C: D with 1x1 third convs of blocks 3-5, 8/9 fewer weights each: D - 8*256*256
#      - 2*8*512*512 = 138,357,544 - 4,718,592 = 133,638,952 (Table 2: 134M).
_NUM_PARAMS = {"A": 132_863_336, "A-LRN": 132_863_336, "B": 133_047_848,
               "C": 133_638_952, "D": 138_357_544, "E": 143_667_240}  # fmt: skip

for _config, _name in MODEL_NAMES.items():
    register_model(
        _name,
        vgg,
        task="classification",
        paper=PAPER,
        num_params=_NUM_PARAMS[_config],
        test_overrides={"input_shape": (32, 32, 3), "num_classes": 5},
        config=_config,
    )

# torchvision's batch-normalized VGGs (configurations A, B, D, E), with its ImageNet
# normalization. Trainable parameters equal torchvision 0.28's
# `VGG{11,13,16,19}_BN_Weights.IMAGENET1K_V1.meta["num_params"]`: the plain configuration
# plus gamma and beta per conv channel (A: 2,752 channels, B: 2,944, D: 4,224, E: 5,504):
# 132,868,840 / 133,053,736 / 138,365,992 / 143,678,248. Keras counting adds the BN moving
# mean and variance (2 per channel again): 132,874,344 / 133,059,624 / 138,374,440 /
# 143,689,256.
_BN_NUM_PARAMS = {"A": 132_874_344, "B": 133_059_624, "D": 138_374_440, "E": 143_689_256}
for _config, _num_params in _BN_NUM_PARAMS.items():
    register_model(
        f"{MODEL_NAMES[_config]}_bn",
        vgg,
        task="classification",
        paper=BN_PAPER,
        num_params=_num_params,
        test_overrides={"input_shape": (32, 32, 3), "num_classes": 5},
        config=_config,
        batch_norm=True,
        preprocessing="torch",
    )
