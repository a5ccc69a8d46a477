"""DeconvNet: a VGG16 encoder mirrored by unpooling and deconvolution layers."""

import keras

from kerascv_suite.layers.max_unpooling import MaxUnpooling
from kerascv_suite.models.common import check_head_args, finish_model, global_pool, image_input
from kerascv_suite.models.registry import register_model
from kerascv_suite.models.segmentation.common import segmentation_head, static_size
from kerascv_suite.models.segmentation.vgg_encoder import (
    VGG16_BLOCKS,
    conv_bn_relu,
    scaled,
    vgg16_encoder,
)
from kerascv_suite.weights.backbone import check_backbone_args, load_backbone_weights

PAPER = (
    "H. Noh, S. Hong, B. Han. Learning Deconvolution Network for Semantic Segmentation. "
    "ICCV 2015 (arXiv:1505.04366)."
)
# Paper Table 1: filters of the deconvolution layers after each unpooling, block 5 first.
DECODER = {5: (512, 512, 512), 4: (512, 512, 256), 3: (256, 256, 128), 2: (128, 64), 1: (64, 64)}


def deconvnet(
    num_classes=21,
    input_shape=(224, 224, 3),
    include_top=True,
    weights=None,
    pooling=None,
    classifier_activation="softmax",
    preprocessing="caffe",
    width=1.0,
    fc_padding=None,
    blocks=5,
    backbone_weights=None,
    name="deconvnet",
):
    """Builds DeconvNet (Noh, Hong, Han, ICCV 2015, Table 1 and Fig. 2).

    Encoder: VGG16's 13 convolutions (keras.applications names), pooled with
    `MaxPoolingWithArgmax`; fc6 (7x7, 4096) and fc7 (1x1, 4096) convolutions. Decoder, the
    mirror image: `deconv6` (7x7 transposed convolution back to 512 maps), then for blocks 5
    to 1 an unpooling with that block's switches (`unpool5` ...) followed by 3x3 transposed
    convolutions (`deconv5_1` ...) whose filters follow Table 1. "Batch normalization" follows
    every convolution and deconvolution (section 3.2.1), then ReLU. A 1x1 convolution scores
    the classes.

    Args:
        num_classes: classes per pixel (21, PASCAL VOC, in the paper).
        input_shape: `(height, width, 3)` with known height and width (224x224 in the paper).
        include_top: False returns the last deconvolution's `(batch, height, width, 64)`
            features, pooled by `pooling`.
        weights: None, or a weights file / MLflow URI (see `load_weights`).
        pooling: None, `"avg"` or `"max"`, used when `include_top=False`.
        classifier_activation: per-pixel activation (`"softmax"`), None for logits.
        preprocessing: `ImagePreprocessing` mode; `"caffe"` is VGG16's.
        width: filter multiplier of every layer but the classifier (1.0: the paper).
        fc_padding: `"valid"` (the paper: on 224x224 fc6 maps 7x7 to 1x1 and deconv6 maps it
            back) or `"same"`; None picks "valid" when the last pooling is at least 7x7
            (with 5 blocks, inputs of 193 pixels or more) and "same" otherwise. Parameters
            are the same.
        blocks: encoder blocks, each mirrored by an unpooling block (5: the paper). The
            CPU recipe (kerascv_suite/recipes/deconvnet_shapes.yaml) uses 3 (fewer sparse
            unpoolings train much faster from scratch) with `fc_padding="same"`: on 64x64
            inputs the last pooling is 8x8, where a "valid" 7x7 fc6 would leave a 2x2 map.
        backbone_weights: None, `"imagenet"`, a vgg16 catalog entry (`vgg16.tv_in1k`) or a
            VGG16 weights file: the encoder's convolutions by layer name and, with all 5
            blocks, VGG16's fc1 / fc2 reshaped into the fc6 / fc7 convolutions (the paper's
            convolution network is ImageNet VGG16 through fc7); `width` must be 1 and
            `preprocessing` what the weights expect (see
            `weights.backbone.load_backbone_weights`).
        name: model name.

    Returns:
        A `keras.Model` mapping `(batch, height, width, 3)` RGB images in [0, 255] to
        `(batch, height, width, num_classes)` class probabilities.
    """
    check_head_args(include_top, num_classes, pooling)
    static_size(input_shape, "DeconvNet")
    source = check_backbone_args(backbone_weights, "vgg16", name, preprocessing, width,
                                 weights)

    # === Encoder ===
    inputs, x = image_input(input_shape, preprocessing)
    x, skips = vgg16_encoder(x, width, batch_norm=True, argmax=True, blocks=blocks)
    if fc_padding is None:
        fc_padding = "valid" if min(x.shape[1:3]) >= 7 else "same"
    x = conv_bn_relu(x, scaled(4096, width), 7, "fc6", True, padding=fc_padding)
    x = conv_bn_relu(x, scaled(4096, width), 1, "fc7", True)

    # === Decoder ===
    # deconv6 restores the last block's channels, which its unpooling expects.
    x = conv_bn_relu(x, scaled(VGG16_BLOCKS[blocks - 1][-1], width), 7, "deconv6", True,
                     transpose=True, padding=fc_padding)  # fmt: skip
    for block in range(blocks, 0, -1):
        skip = skips[block - 1]
        x = MaxUnpooling(2, name=f"unpool{block}")([x, skip["indices"], skip["input"]])
        for index, filters in enumerate(DECODER[block], start=1):
            x = conv_bn_relu(x, scaled(filters, width), 3, f"deconv{block}_{index}", True,
                             transpose=True)  # fmt: skip

    # === Head ===
    if include_top:
        x = keras.layers.Conv2D(num_classes, 1, name="score")(x)
        x = segmentation_head(x, num_classes, classifier_activation)
    else:
        x = global_pool(x, pooling)
    model = finish_model(inputs, x, name, weights)
    if source is not None:
        load_backbone_weights(model, source, "vgg16", fc="conv")
    return model


# Keras-counted parameters at the defaults (21 classes), by hand. Each convolution
# k*k*in*out + out; each BN 4*channels (gamma, beta, moving mean and variance).
#   encoder convs 14,714,688 (keras.applications VGG16 notop) + BN 4 * 4,224 = 16,896;
#   fc6 102,764,544 + BN 16,384; fc7 16,781,312 + BN 16,384;
#   deconv6 7*7*4096*512 + 512 = 102,760,960 + BN 2,048;
#   deconv5_* 3 * 2,359,808 = 7,079,424; deconv4_1/2 2 * 2,359,808 = 4,719,616,
#   deconv4_3 (512->256) 1,179,904; deconv3_1/2 2 * 590,080 = 1,180,160,
#   deconv3_3 (256->128) 295,040; deconv2_1 147,584; deconv2_2 (128->64) 73,792;
#   deconv1_1/2 2 * 36,928 = 73,856: 14,749,376 + BN 4 * (1536+1280+640+192+128) = 15,104;
#   score 64*21 + 21 = 1,365.
#   Total 14,731,584 + 102,780,928 + 16,797,696 + 102,763,008 + 14,764,480 + 1,365
#   = 251,839,061 (the paper's network is VGG16's 134M plus a mirrored 118M decoder).
NUM_PARAMS = 251_839_061

register_model(
    "deconvnet",
    deconvnet,
    task="segmentation",
    paper=PAPER,
    num_params=NUM_PARAMS,
    test_overrides={"input_shape": (32, 32, 3), "num_classes": 3, "width": 0.0625},
)
