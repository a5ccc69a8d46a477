"""Stride-16 feature extractors for the R-CNN family, and their ImageNet weights."""

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


def load_detector_backbone(model, backbone_weights, fcs):
    """Copies ImageNet backbone weights into an R-CNN-family detector in place.

    The backbone (`model.backbone`, keras.applications layer names) takes VGG16's or
    ResNet-50's convolutions; with VGG16, `fcs` (the detector's `fc6`, `fc7` Dense layers)
    take VGG16's `fc1`, `fc2` where their shapes are VGG16's: the paper heads (Fast R-CNN's
    7x7 RoI pooling into 4096-unit fc6 / fc7, Girshick 2015 sec. 2.3; R-CNN's 224 px warps),
    else they keep their initialization (one warning line).

    Args:
        model: a `FasterRCNN`, `FastRCNN` or `RCNN` with a `"vgg16"` / `"resnet50"` backbone.
        backbone_weights: `"imagenet"`, a catalog entry, a file or a checked source
            (see `kerascv_suite.weights.backbone`).
        fcs: the head's fc6 / fc7 layers.

    Returns:
        The names of the layers that received weights.
    """
    from kerascv_suite.weights.backbone import load_backbone_weights

    fc = "dense" if model.backbone_name == "vgg16" else None
    return load_backbone_weights(model, backbone_weights, model.backbone_name, fc=fc,
                                 layers=[*model.backbone.layers, *fcs])
