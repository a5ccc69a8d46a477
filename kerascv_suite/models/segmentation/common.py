"""Small helpers the segmentation builders share."""

import keras


def static_size(input_shape, family):
    """Returns `(height, width)` of `input_shape`, which these builders need to be known."""
    height, width = input_shape[0], input_shape[1]
    if height is None or width is None:
        raise ValueError(
            f"{family} needs a known input height and width (resize or tile images to it). "
            f"Received: input_shape={tuple(input_shape)}"
        )
    return int(height), int(width)


def crop_to(x, height, width, name):
    """Crops the bottom/right of `x` to `(height, width)`: the graph aligns at the top-left."""
    extra_h, extra_w = x.shape[1] - height, x.shape[2] - width
    if extra_h == 0 and extra_w == 0:
        return x
    return keras.layers.Cropping2D(((0, extra_h), (0, extra_w)), name=name)(x)


def segmentation_head(x, num_classes, classifier_activation, name="predictions"):
    """The per-pixel class activation (softmax over the last axis by default)."""
    if classifier_activation is None:
        return x
    return keras.layers.Activation(classifier_activation, name=name)(x)

