"""SegNet: a VGG16 encoder whose decoder upsamples with the encoder's pooling indices."""

import keras

from kerascv_suite.layers.max_unpooling import MaxUnpooling
from kerascv_suite.models.common import check_head_args, finish_model, global_pool, image_input
from kerascv_suite.models.registry import register_model
from kerascv_suite.models.segmentation.common import segmentation_head, static_size
from kerascv_suite.models.segmentation.vgg_encoder import (
    conv_bn_relu,
    scaled,
    vgg16_encoder,
)
from kerascv_suite.weights.backbone import check_backbone_args, load_backbone_weights

PAPER = (
    "V. Badrinarayanan, A. Kendall, R. Cipolla. SegNet: A Deep Convolutional Encoder-Decoder "
    "Architecture for Image Segmentation. IEEE TPAMI 39(12), 2017 (arXiv:1511.00561)."
)
# Decoder convolutions after each upsampling, block 5 first, as in the reference Caffe
# model (conv5_3_D ... conv1_2_D); conv1_1_D, the classifier, follows.
DECODER = {5: (512, 512, 512), 4: (512, 512, 256), 3: (256, 256, 128), 2: (128, 64), 1: (64,)}


def segnet(
    num_classes=11,
    input_shape=(360, 480, 3),
    include_top=True,
    weights=None,
    pooling=None,
    classifier_activation="softmax",
    preprocessing="caffe",
    width=1.0,
    blocks=5,
    backbone_weights=None,
    name="segnet",
):
    """Builds SegNet (Badrinarayanan, Kendall, Cipolla, TPAMI 2017, Fig. 2-3).

    The encoder is "topologically identical to the 13 convolutional layers in the VGG16
    network" with batch normalization and ReLU after each convolution, and 2x2 max pooling
    that stores its argmax. Each decoder block upsamples with the stored indices of the
    matching encoder pooling (`MaxUnpooling`, no learned upsampling), then applies 3x3
    convolutions with batch normalization and ReLU (`conv5_3_D` ... `conv1_2_D`). A last 3x3
    convolution `conv1_1_D` scores the classes for a per-pixel softmax. Poolings round up, so
    any input size comes back at its own size (CamVid's 360x480 in the paper).

    Args:
        num_classes: classes per pixel (11, CamVid, in the paper).
        input_shape: `(height, width, 3)` with known height and width.
        include_top: False returns `conv1_2_D`'s `(batch, height, width, 64)` features,
            pooled by `pooling`.
        weights: None, or a weights file / MLflow URI (see `load_weights`).
        pooling: None, `"avg"` or `"max"`, used when `include_top=False`.
        classifier_activation: per-pixel activation (`"softmax"`), None for logits.
        preprocessing: `ImagePreprocessing` mode; `"caffe"` is VGG16's.
        width: filter multiplier of every layer but the classifier (1.0: the paper).
        blocks: encoder blocks, each mirrored by a decoder block (5: the paper). The CPU
            recipe (kerascv_suite/recipes/segnet_shapes.yaml) uses 3, an 8x8 bottleneck on
            64x64 inputs: each index unpooling leaves 3 of 4 positions zero, and with 5 of
            them a small model trained for minutes stays near "all background".
        backbone_weights: None, `"imagenet"`, a vgg16 catalog entry (`vgg16.tv_in1k`) or a
            VGG16 weights file, copied into the encoder's convolutions by layer name (the
            paper initializes from VGG16, section 4; with fewer `blocks`, theirs only);
            `width` must be 1 and `preprocessing` what the weights expect (see
            `weights.backbone.load_backbone_weights`).
        name: model name.

    Returns:
        A `keras.Model` mapping `(batch, height, width, 3)` RGB images in [0, 255] to
        `(batch, height, width, num_classes)` class probabilities.
    """
    check_head_args(include_top, num_classes, pooling)
    static_size(input_shape, "SegNet")
    source = check_backbone_args(backbone_weights, "vgg16", name, preprocessing, width,
                                 weights)

    # === Encoder ===
    inputs, x = image_input(input_shape, preprocessing)
    x, skips = vgg16_encoder(x, width, batch_norm=True, argmax=True, blocks=blocks)

    # === Decoder ===
    for block in range(blocks, 0, -1):
        skip = skips[block - 1]
        x = MaxUnpooling(2, name=f"upsample{block}")([x, skip["indices"], skip["input"]])
        filters = DECODER[block]
        for position, f in enumerate(filters):
            index = len(filters) - position + (1 if block == 1 else 0)
            x = conv_bn_relu(x, scaled(f, width), 3, f"conv{block}_{index}_D", True)

    # === Head ===
    if include_top:
        x = keras.layers.Conv2D(num_classes, 3, padding="same", name="conv1_1_D")(x)
        x = segmentation_head(x, num_classes, classifier_activation)
    else:
        x = global_pool(x, pooling)
    model = finish_model(inputs, x, name, weights)
    if source is not None:
        load_backbone_weights(model, source, "vgg16")
    return model


# Keras-counted parameters at the defaults (11 classes), by hand:
#   encoder convs 14,714,688 -- the paper's "14.7M" encoder parameters (section 1 and 3:
#   discarding VGG16's fully connected layers reduces "the number of parameters in the
#   SegNet encoder network significantly (from 134M to 14.7M)") -- + BN 4 * 4,224 = 16,896;
#   decoder convs: block 5 3 * 2,359,808 = 7,079,424; block 4 2 * 2,359,808 + 1,179,904
#   = 5,899,520; block 3 2 * 590,080 + 295,040 = 1,475,200; block 2 147,584 + 73,792
#   = 221,376; conv1_2_D 36,928; decoder BN 4 * (1536 + 1280 + 640 + 192 + 64) = 14,848;
#   conv1_1_D 3*3*64*11 + 11 = 6,347.
#   Total 14,731,584 + 14,712,448 + 14,848 + 6,347 = 29,465,227.
NUM_PARAMS = 29_465_227

register_model(
    "segnet",
    segnet,
    task="segmentation",
    paper=PAPER,
    num_params=NUM_PARAMS,
    test_overrides={"input_shape": (32, 32, 3), "num_classes": 3, "width": 0.0625},
)
