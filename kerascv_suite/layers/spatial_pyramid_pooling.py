"""Spatial pyramid pooling: a fixed-length vector from a feature map of any size."""

import keras
from keras import ops


def _bin_masks(size, bins):
    """`(bins, size)` bool: bin i covers cells floor(i * a / n) .. ceil((i + 1) * a / n)."""
    t = ops.arange(size)
    i = ops.arange(bins)[:, None]
    lo = ops.floor_divide(i * size, bins)
    hi = -ops.floor_divide(-(i + 1) * size, bins)
    return ops.logical_and(t[None, :] >= lo, t[None, :] < hi)


@keras.saving.register_keras_serializable(package="kerascv_suite")
class SpatialPyramidPooling(keras.layers.Layer):
    """Max-pools a feature map over n x n grids for each pyramid level and concatenates.

    He, Zhang, Ren, Sun, "Spatial Pyramid Pooling in Deep Convolutional Networks for Visual
    Recognition", ECCV 2014: levels of 4x4, 2x2 and 1x1 bins give `21 * channels` features
    whatever the input size. The paper pools an a x a map with windows ceil(a / n) and
    strides floor(a / n); here bin i spans cells floor(i a / n) .. ceil((i + 1) a / n), the
    same windows for the paper's 13 x 13 conv5 maps, and a full cover (no dropped border
    cells) for any other size, also non-square and smaller than n.

    Args:
        bins: the pyramid levels, n for each n x n grid.

    Input: `(batch, height, width, channels)`; height and width may vary between calls.
    Output: `(batch, channels * sum(n * n))`, level by level, each level row-major over bins
    with channels innermost.

    Example:
        >>> v = SpatialPyramidPooling((4, 2, 1))(conv5)  # (batch, 21 * 256) for 256 channels
    """

    def __init__(self, bins=(4, 2, 1), **kwargs):
        super().__init__(**kwargs)
        bins = tuple(int(n) for n in bins)
        if not bins or min(bins) < 1:
            raise ValueError(f"bins must be positive ints. Received: bins={bins!r}")
        self.bins = bins

    def call(self, inputs):
        height, width = ops.shape(inputs)[1], ops.shape(inputs)[2]
        low = ops.convert_to_tensor(-float("inf"), inputs.dtype)
        outputs = []
        for n in self.bins:
            mask_w = _bin_masks(width, n)  # (n, W)
            mask_h = _bin_masks(height, n)  # (n, H)
            # Over the columns of each column-bin: (b, H, n, C); then rows: (b, n, n, C).
            cols = ops.max(ops.where(mask_w[None, None, :, :, None], inputs[:, :, None], low),
                           axis=3)
            grid = ops.max(ops.where(mask_h[None, :, :, None, None], cols[:, None], low),
                           axis=2)
            outputs.append(ops.reshape(grid, (-1, n * n * inputs.shape[-1])))
        return ops.concatenate(outputs, axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1] * sum(n * n for n in self.bins))

    def get_config(self):
        return {**super().get_config(), "bins": self.bins}
