"""The VGG16 encoder shared by FCN, DeconvNet and SegNet, with keras.applications layer names."""

import keras

from kerascv_suite.layers.max_pooling_with_argmax import MaxPoolingWithArgmax

VGG16_PAPER = (
    "K. Simonyan, A. Zisserman. Very Deep Convolutional Networks for Large-Scale Image "
    "Recognition. ICLR 2015."
)
# VGG16 (configuration D): filters of each 3x3 convolution, block by block.
VGG16_BLOCKS = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))


def scaled(filters, width):
    """`filters * width`, rounded, at least 1 (the reduced-width CPU recipes)."""
    return max(1, int(round(filters * width)))


def conv_bn_relu(x, filters, kernel, name, batch_norm, transpose=False, padding="same"):
    """A convolution (or transposed convolution) followed by optional BN and a ReLU.

    Without batch norm the ReLU is the convolution's activation, as in keras.applications.
    With it the layers are `{name}`, `{name}_bn`, `{name}_relu`.
    """
    cls = keras.layers.Conv2DTranspose if transpose else keras.layers.Conv2D
    if not batch_norm:
        return cls(filters, kernel, padding=padding, activation="relu", name=name)(x)
    x = cls(filters, kernel, padding=padding, name=name)(x)
    x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    return keras.layers.Activation("relu", name=f"{name}_relu")(x)


def vgg16_encoder(x, width=1.0, batch_norm=False, argmax=False, pool_padding="same",
                  blocks=5):
    """Applies VGG16's 13 convolutions and 5 poolings (`block1_conv1` ... `block5_pool`).

    Args:
        x: `(batch, height, width, 3)` preprocessed images.
        width: multiplier of every convolution's filters (1.0: the paper).
        batch_norm: add BatchNormalization after each convolution (SegNet, DeconvNet).
        argmax: pool with `MaxPoolingWithArgmax` and keep the indices for unpooling.
        pool_padding: `"same"` rounds pooled sizes up, so any input size works.
        blocks: how many of VGG16's 5 blocks to apply (5: the paper). Fewer blocks keep a
            larger bottleneck on small inputs (the reduced CPU recipes).

    Returns:
        `(x, skips)`: the last block's pooled output and a list, per block, of dicts with
        `"input"` (the pooled tensor), `"pool"` and (with `argmax`) `"indices"`.
    """
    if not 1 <= blocks <= len(VGG16_BLOCKS):
        raise ValueError(f"blocks must be 1 to {len(VGG16_BLOCKS)}. Received: blocks={blocks}")
    skips = []
    for block, filters in enumerate(VGG16_BLOCKS[:blocks], start=1):
        for index, f in enumerate(filters, start=1):
            x = conv_bn_relu(x, scaled(f, width), 3, f"block{block}_conv{index}", batch_norm)
        skip = {"input": x}
        if argmax:
            x, skip["indices"] = MaxPoolingWithArgmax(
                2, padding=pool_padding, name=f"block{block}_pool"
            )(x)
        else:
            x = keras.layers.MaxPooling2D(2, strides=2, padding=pool_padding,
                                          name=f"block{block}_pool")(x)  # fmt: skip
        skip["pool"] = x
        skips.append(skip)
    return x, skips


def load_vgg16_backbone(model, backbone_weights):
    """Copies ImageNet VGG16 convolutions (`block1_conv1` ...) into a model built with
    `vgg16_encoder` at `width=1.0`, by layer name; batch normalization and everything after
    the encoder keep their initialization.

    Args:
        model: the model.
        backbone_weights: `"imagenet"`, a vgg16 catalog entry or a VGG16 weights file (see
            `kerascv_suite.weights.backbone.load_backbone_weights`, which does the copy).

    Returns:
        `model`.
    """
    from kerascv_suite.weights.backbone import load_backbone_weights

    load_backbone_weights(model, backbone_weights, "vgg16")
    return model
