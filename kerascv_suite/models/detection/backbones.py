"""Stride-16 feature extractors for the R-CNN family."""

import keras

from kerascv_suite.models.classification.resnet import resnet
from kerascv_suite.models.classification.vgg import vgg
from kerascv_suite.models.common import image_input

BACKBONES = ("vgg16", "resnet50", "small")
# Layer whose output is the stride-16 feature map, and its channels.
_CUTS = {"vgg16": ("block5_conv3", 512), "resnet50": ("conv4_block6_out", 1024)}
SMALL_FILTERS = (32, 64, 128, 256)


def stride16_backbone(backbone, input_shape, preprocessing="caffe"):
    """A functional model from images to stride-16 features.

    - `"vgg16"`: VGG16 up to `block5_conv3` (512 channels), as Faster R-CNN (Ren et al.
      2015) and Fast R-CNN; keras.applications' layer names, so its no-top weights load.
    - `"resnet50"`: ResNet-50 up to `conv4_block6_out` (1024 channels, the "C4" backbone of
      He et al. 2016, sec. 4 / Detectron); batch normalization is frozen (inference mode,
      non-trainable), as torchvision's FrozenBatchNorm2d, because detection batches are
      too small for batch statistics.
    - `"small"`: four conv3x3-ReLU + 2x2 max-pool blocks (32, 64, 128, 256 channels), a
      CPU-sized stand-in with the same stride.

    Returns:
        `(model, channels)`.
    """
    if backbone == "vgg16":
        base = vgg(input_shape=input_shape, include_top=False, config="D",
                   preprocessing=preprocessing)
    elif backbone == "resnet50":
        base = resnet(input_shape=input_shape, include_top=False, preprocessing=preprocessing)
        for layer in base.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False
    elif backbone == "small":
        inputs, x = image_input(input_shape, preprocessing)
        for block, filters in enumerate(SMALL_FILTERS, start=1):
            x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu",
                                    name=f"block{block}_conv1")(x)
            x = keras.layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
        return keras.Model(inputs, x, name="small_backbone"), SMALL_FILTERS[-1]
    else:
        raise ValueError(f"backbone must be one of {BACKBONES}. Received: backbone={backbone!r}")
    layer, channels = _CUTS[backbone]
    return keras.Model(base.input, base.get_layer(layer).output,
                       name=f"{backbone}_backbone"), channels
