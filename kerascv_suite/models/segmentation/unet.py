"""U-Net: the paper's valid-convolution form and a padded form for everyday use."""

import keras

from kerascv_suite.layers.crop_concatenate import CropConcatenate
from kerascv_suite.models.common import check_head_args, finish_model, global_pool, image_input
from kerascv_suite.models.registry import register_model
from kerascv_suite.models.segmentation.common import segmentation_head
from kerascv_suite.models.segmentation.vgg_encoder import conv_bn_relu, scaled

PAPER = (
    "O. Ronneberger, P. Fischer, T. Brox. U-Net: Convolutional Networks for Biomedical Image "
    "Segmentation. MICCAI 2015 (arXiv:1505.04597)."
)
FILTERS = (64, 128, 256, 512, 1024)


def unet(
    num_classes=2,
    input_shape=(572, 572, 1),
    include_top=True,
    weights=None,
    pooling=None,
    classifier_activation="softmax",
    preprocessing="unit",
    padding="valid",
    width=1.0,
    batch_norm=False,
    dropout=0.5,
    name=None,
):
    """Builds a U-Net (Ronneberger, Fischer, Brox, MICCAI 2015, Fig. 1).

    Contracting path: five blocks of two 3x3 convolutions with ReLU (`block{b}_conv1/2`,
    64 to 1024 filters) separated by 2x2 max pooling; dropout at the end of the path
    (section 3). Expansive path: per step a 2x2 up-convolution halving the channels
    (`up{b}_upconv`), concatenation with the centre-cropped contracting map
    (`up{b}_concat`, `CropConcatenate`) and two 3x3 convolutions; a 1x1 convolution
    scores the classes.

    With `padding="valid"` (the paper) each convolution loses a border: 572x572 inputs give
    388x388 outputs (the output covers the input's centre; the paper's overlap-tile strategy
    mirrors the borders so tiles cover a whole image). With `"same"` the output is the input's
    size, which must then be a multiple of 16.

    Args:
        num_classes: classes per pixel (2 in the paper).
        input_shape: `(height, width, channels)`; for `"valid"`, `16 * k + 124` pixels
            (e.g. 572, the paper's; 188 is the smallest).
        include_top: False returns the last `(batch, h, w, 64 * width)` features, pooled
            by `pooling`.
        weights: None, or a weights file / MLflow URI (see `load_weights`).
        pooling: None, `"avg"` or `"max"`, used when `include_top=False`.
        classifier_activation: per-pixel activation (`"softmax"`), None for logits.
        preprocessing: `ImagePreprocessing` mode (`"unit"`: scale pixels to [0, 1]).
        padding: `"valid"` (the paper) or `"same"`.
        width: filter multiplier (1.0: the paper's 64..1024).
        batch_norm: add BatchNormalization after each 3x3 convolution (not in the paper).
        dropout: dropout rate after the contracting path; 0 leaves the layer out.
        name: model name.

    Returns:
        A `keras.Model` mapping `(batch, height, width, channels)` images in [0, 255] to
        `(batch, out_height, out_width, num_classes)` class probabilities.
    """
    check_head_args(include_top, num_classes, pooling)
    if padding not in ("valid", "same"):
        raise ValueError(f"padding must be 'valid' or 'same'. Received: padding={padding!r}")
    name = name or ("unet_paper" if padding == "valid" else "unet")

    # === Contracting path ===
    inputs, x = image_input(input_shape, preprocessing)
    skips = []
    for block, filters in enumerate(FILTERS, start=1):
        if block > 1:
            x = keras.layers.MaxPooling2D(2, strides=2, name=f"block{block - 1}_pool")(x)
        for index in (1, 2):
            x = conv_bn_relu(x, scaled(filters, width), 3, f"block{block}_conv{index}",
                             batch_norm, padding=padding)  # fmt: skip
        skips.append(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name=f"block{len(FILTERS)}_dropout")(x)

    # === Expansive path ===
    for block in range(len(FILTERS) - 1, 0, -1):
        filters = scaled(FILTERS[block - 1], width)
        x = keras.layers.Conv2DTranspose(filters, 2, strides=2, name=f"up{block}_upconv")(x)
        x = CropConcatenate(name=f"up{block}_concat")([x, skips[block - 1]])
        for index in (1, 2):
            x = conv_bn_relu(x, filters, 3, f"up{block}_conv{index}", batch_norm,
                             padding=padding)  # fmt: skip

    # === Head ===
    if include_top:
        x = keras.layers.Conv2D(num_classes, 1, name="score")(x)
        x = segmentation_head(x, num_classes, classifier_activation)
    else:
        x = global_pool(x, pooling)
    return finish_model(inputs, x, name, weights)


# Parameters of the paper's network (1 input channel, 2 classes), by hand, each 3x3
# convolution 9*in*out + out:
#   contracting: 640 + 36,928 | 73,856 + 147,584 | 295,168 + 590,080 |
#                1,180,160 + 2,359,808 | 4,719,616 + 9,438,208       = 18,842,048
#   expansive (2x2 up-conv 4*in*out + out, then two 3x3 convs on the concatenation):
#     up4 2,097,664 + 4,719,104 + 2,359,808 = 9,176,576
#     up3   524,544 + 1,179,904 +   590,080 = 2,294,528
#     up2   131,200 +   295,040 +   147,584 =   573,824
#     up1    32,832 +    73,792 +    36,928 =   143,552
#   score 64*2 + 2 = 130.                       Total 31,030,658.
# The widely quoted 31,031,685 is zhixuhao/unet's Keras model, whose head is a 3x3 conv to
# 2 maps (1,154) plus a 1x1 sigmoid conv (3) instead of the paper's 1x1 conv (130):
# 31,030,658 - 130 + 1,154 + 3 = 31,031,685.
UNET_PAPER_PARAMS = 31_030_658
# The padded form takes RGB: the first convolution has 9*3*64 + 64 = 1,792 (+1,152).
UNET_PARAMS = 31_031_810

register_model(
    "unet_paper",
    unet,
    task="segmentation",
    paper=PAPER,
    num_params=UNET_PAPER_PARAMS,
    test_overrides={"input_shape": (188, 188, 1), "num_classes": 3, "width": 0.0625},
)
register_model(
    "unet",
    unet,
    task="segmentation",
    paper=PAPER,
    num_params=UNET_PARAMS,
    test_overrides={"input_shape": (32, 32, 3), "num_classes": 3, "width": 0.0625},
    input_shape=(256, 256, 3),
    padding="same",
)
