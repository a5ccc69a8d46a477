"""Pieces every classification builder shares: the input stem, pooling and the model wrap-up."""

import keras

from kerascv_suite.layers.image_preprocessing import ImagePreprocessing
from kerascv_suite.models.weights import load_weights

POOLINGS = (None, "avg", "max")


def image_input(input_shape, preprocessing=None, name="image"):
    """Creates the model input and applies in-model preprocessing.

    Args:
        input_shape: `(height, width, channels)`; height and width may be None.
        preprocessing: an `ImagePreprocessing` mode or None for no layer.

    Returns:
        `(inputs, x)`: the `keras.Input` and the tensor the network starts from.
    """
    inputs = keras.Input(shape=tuple(input_shape), name=name)
    if preprocessing is None:
        return inputs, inputs
    return inputs, ImagePreprocessing(preprocessing, name="preprocessing")(inputs)


def check_head_args(include_top, num_classes, pooling):
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}. Received: pooling={pooling!r}")
    if include_top and (num_classes is None or int(num_classes) < 1):
        raise ValueError(
            "`num_classes` must be a positive integer when include_top=True. "
            f"Received: num_classes={num_classes!r}"
        )


def global_pool(x, pooling):
    """Applies the `pooling` choice of a headless model: None, `"avg"` or `"max"`."""
    if pooling == "avg":
        return keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if pooling == "max":
        return keras.layers.GlobalMaxPooling2D(name="max_pool")(x)
    return x


def finish_model(inputs, outputs, name, weights=None):
    """Wraps the graph in a `keras.Model` and loads `weights` (see `load_weights`)."""
    model = keras.Model(inputs, outputs, name=name)
    return load_weights(model, weights)
