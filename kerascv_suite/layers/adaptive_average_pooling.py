"""Adaptive average pooling to a fixed grid, with the bins of torch's `AdaptiveAvgPool2d`."""

import keras
from keras import ops


def average_matrix(size, bins, dtype):
    """`(bins, size)`: row i averages cells floor(i * size / bins) .. ceil((i + 1) * size / bins)
    (exclusive end), torch's adaptive pooling windows; they overlap and repeat cells when
    `size` is not a multiple of `bins` or is smaller than it."""
    t = ops.arange(size)
    i = ops.arange(bins)[:, None]
    lo = ops.floor_divide(i * size, bins)
    hi = -ops.floor_divide(-(i + 1) * size, bins)
    inside = ops.cast(ops.logical_and(t[None, :] >= lo, t[None, :] < hi), dtype)
    return inside / ops.sum(inside, axis=1, keepdims=True)


@keras.saving.register_keras_serializable(package="kerascv_suite")
class AdaptiveAveragePooling(keras.layers.Layer):
    """Average-pools a feature map of any size onto an `output_size` grid.

    The windows are torch's `nn.AdaptiveAvgPool2d`: output row i averages input rows
    `floor(i * H / h)` to `ceil((i + 1) * H / h) - 1`, and the same for columns, so a map
    already of the output size passes unchanged and a smaller one is repeated
    (torchvision's AlexNet pools its 1x1 conv5 map of a 64x64 input to 6x6). Keras'
    `AdaptiveAveragePooling2D` (3.15) fails in compiled TensorFlow graphs when the input is
    smaller than the output; this layer computes the average as two small matrix products,
    the same on every backend.

    Args:
        output_size: `(height, width)` of the output grid, or one int for both.

    Input shape: `(batch, H, W, channels)`; H and W may vary between calls.
    Output shape: `(batch, height, width, channels)`.

    Example:
        >>> AdaptiveAveragePooling((6, 6))(conv5)  # (batch, 6, 6, 256) whatever conv5's size
    """

    def __init__(self, output_size, **kwargs):
        super().__init__(**kwargs)
        size = (output_size, output_size) if isinstance(output_size, int) else output_size
        size = tuple(int(n) for n in size)
        if len(size) != 2 or min(size) < 1:
            raise ValueError(
                "output_size must be a positive int or (height, width) of positive ints. "
                f"Received: output_size={output_size!r}"
            )
        self.output_size = size

    def call(self, inputs):
        shape = ops.shape(inputs)
        rows = average_matrix(shape[1], self.output_size[0], inputs.dtype)
        cols = average_matrix(shape[2], self.output_size[1], inputs.dtype)
        return ops.einsum("ih,bhwc,jw->bijc", rows, inputs, cols)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.output_size, input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "output_size": self.output_size}
