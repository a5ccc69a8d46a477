"""RoI max pooling (Fast R-CNN): every region of interest to a fixed grid of bins."""

import keras
from keras import ops


def _c_round(x):
    """C's `round` (halves away from zero), as the Caffe RoI pooling layer uses."""
    return ops.sign(x) * ops.floor(ops.abs(x) + 0.5)


def _bin_masks(start, end, bins, size):
    """`(batch, rois, bins, size)` bool: cell t lies in bin p of the integer span start..end.

    Bin p covers `floor(p * n / bins) .. ceil((p + 1) * n / bins)` of the n = end - start + 1
    cells (at least 1), offset by `start` and clipped to the map, in integer arithmetic so
    the edges cannot drift with float rounding.
    """
    n = ops.maximum(end - start + 1, 1)[..., None]  # (batch, rois, 1)
    p = ops.arange(bins, dtype="int32")
    lo = ops.clip(ops.floor_divide(p * n, bins) + start[..., None], 0, size)
    hi = ops.clip(-ops.floor_divide(-(p + 1) * n, bins) + start[..., None], 0, size)
    t = ops.arange(size, dtype="int32")
    return ops.logical_and(t >= lo[..., None], t < hi[..., None])


@keras.saving.register_keras_serializable(package="kerascv_suite")
class RoIPooling(keras.layers.Layer):
    """Max-pools each region of interest of a feature map to `pool_size` bins.

    Girshick, "Fast R-CNN", ICCV 2015, sec. 2.1, with the quantization of its Caffe layer:
    RoI corners are scaled by `spatial_scale` and rounded to cells, the h x w cell window
    (inclusive, at least 1x1) is split into `floor`/`ceil` bins, and each bin takes the
    maximum of its cells (0 for a bin that falls outside the map).

    Args:
        pool_size: int or `(pooled_height, pooled_width)`; 7 for VGG16 in the paper.
        spatial_scale: feature-map cells per input pixel (1/16 for VGG16 conv5_3).

    Input: `[features, rois]`, features `(batch, height, width, channels)` with static
    height and width, rois `(batch, num_rois, 4)` xyxy in input-image pixels.
    Output: `(batch, num_rois, pooled_height, pooled_width, channels)`.

    Example:
        >>> pooled = RoIPooling(7, 1 / 16)([conv5_3, proposals])  # (batch, 128, 7, 7, 512)
    """

    def __init__(self, pool_size=7, spatial_scale=1.0 / 16, **kwargs):
        super().__init__(**kwargs)
        size = (pool_size, pool_size) if isinstance(pool_size, int) else tuple(pool_size)
        if len(size) != 2 or min(size) < 1:
            raise ValueError(f"pool_size must be a positive int or a pair. "
                             f"Received: pool_size={pool_size!r}")
        self.pool_size = tuple(int(s) for s in size)
        self.spatial_scale = float(spatial_scale)

    def call(self, inputs):
        features, rois = inputs
        height, width = features.shape[1], features.shape[2]
        if height is None or width is None:
            raise ValueError("RoIPooling needs a static feature-map height and width. "
                             f"Received: features.shape={features.shape}")
        cells = ops.cast(_c_round(ops.cast(rois, "float32") * self.spatial_scale), "int32")
        ph, pw = self.pool_size
        mask_h = _bin_masks(cells[..., 1], cells[..., 3], ph, height)  # (b, r, ph, H)
        mask_w = _bin_masks(cells[..., 0], cells[..., 2], pw, width)  # (b, r, pw, W)
        low = ops.convert_to_tensor(-float("inf"), features.dtype)
        # Separable max: over the columns of each column-bin, then over its rows. A Python
        # loop over the (static) map size keeps memory at one (b, r, bins, H, C) tensor.
        columns = None
        for w in range(width):
            take = ops.where(mask_w[:, :, :, w, None, None], features[:, None, None, :, w, :],
                             low)
            columns = take if columns is None else ops.maximum(columns, take)
        pooled = None
        for h in range(height):
            take = ops.where(mask_h[:, :, :, h, None, None], columns[:, :, None, :, h, :], low)
            pooled = take if pooled is None else ops.maximum(pooled, take)
        empty = ops.logical_not(ops.logical_and(ops.any(mask_h, -1)[:, :, :, None],
                                                ops.any(mask_w, -1)[:, :, None, :]))
        return ops.where(empty[..., None], ops.zeros_like(pooled), pooled)

    def compute_output_shape(self, input_shape):
        features, rois = input_shape
        return (features[0], rois[1], *self.pool_size, features[-1])

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size,
                "spatial_scale": self.spatial_scale}
