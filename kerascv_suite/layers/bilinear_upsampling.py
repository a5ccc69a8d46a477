"""Transposed convolutions initialized to bilinear interpolation (FCN)."""

import keras
import numpy as np


def bilinear_kernel_size(factor):
    """FCN's kernel size for upsampling by `factor`: `2 * factor - factor % 2`."""
    return 2 * int(factor) - int(factor) % 2


def bilinear_filter(size):
    """The `(size, size)` 2-D bilinear interpolation filter (FCN's `upsample_filt`)."""
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    ramp = 1.0 - np.abs(np.arange(size) - center) / factor
    return np.outer(ramp, ramp)


@keras.saving.register_keras_serializable(package="kerascv_suite")
class BilinearInitializer(keras.initializers.Initializer):
    """Initializes a `Conv2DTranspose` kernel to per-channel bilinear upsampling.

    Long, Shelhamer, Darrell, "Fully Convolutional Networks for Semantic Segmentation",
    CVPR 2015, section 3.3: "we initialize the 2x upsampling to bilinear interpolation".
    Channel `c` of the output reads only channel `c` of the input (the other kernel entries
    are zero), as in the reference Caffe `surgery.interp`.

    The kernel shape is Keras' `Conv2DTranspose` layout `(kh, kw, filters, in_channels)`;
    `kh == kw` and `filters == in_channels` are required.
    """

    def __call__(self, shape, dtype=None):
        kh, kw, filters, in_channels = shape
        if kh != kw or filters != in_channels:
            raise ValueError(
                "A bilinear kernel needs a square kernel and as many filters as input channels. "
                f"Received: shape={tuple(shape)}"
            )
        kernel = np.zeros(shape, dtype="float32")
        kernel[:, :, np.arange(filters), np.arange(filters)] = bilinear_filter(kh)[:, :, None]
        return keras.ops.convert_to_tensor(kernel, dtype=dtype or "float32")

    def get_config(self):
        return {}


def bilinear_upsampling(channels, factor, trainable=True, name=None, dtype=None):
    """A `Conv2DTranspose` that starts as (or stays, if not trainable) bilinear upsampling.

    Kernel `2 * factor - factor % 2`, stride `factor`, no bias (FCN's `upscore` layers).
    With `padding="same"` the output is `factor` times the input and the `floor((k - s) / 2)`
    cropping Keras applies is FCN's crop: input pixel `i`'s centre lands at output
    `(i + 0.5) * factor - 0.5`, the half-pixel convention of bilinear resizing, so away from
    the borders (where zero padding enters) the output is the bilinear interpolation of the
    input.

    Args:
        channels: input and output channels.
        factor: integer upsampling factor.
        trainable: False fixes the filters (FCN's final upsampling, section 4.2).
        name: layer name.

    Returns:
        A `keras.layers.Conv2DTranspose` mapping `(batch, h, w, channels)` to
        `(batch, h * factor, w * factor, channels)`.
    """
    return keras.layers.Conv2DTranspose(
        channels,
        bilinear_kernel_size(factor),
        strides=int(factor),
        padding="same",
        use_bias=False,
        kernel_initializer=BilinearInitializer(),
        trainable=trainable,
        name=name,
        dtype=dtype,
    )
