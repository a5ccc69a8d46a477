"""RoI max pooling (Fast R-CNN): every region of interest to a fixed grid of bins."""

import keras
from keras import ops


def _c_round(x):
    """C's `round` (halves away from zero), as the Caffe RoI pooling layer uses."""
    return ops.sign(x) * ops.floor(ops.abs(x) + 0.5)


def _bin_edges(start, end, bins, size):
    """`(lo, hi)`, each `(batch, rois, bins)` int32: bin p covers cells `lo <= t < hi`.

    Bin p covers `floor(p * n / bins) .. ceil((p + 1) * n / bins)` of the n = end - start + 1
    cells (at least 1), offset by `start` and clipped to the map, in integer arithmetic so
    the edges cannot drift with float rounding. `hi <= lo` marks an empty bin.
    """
    n = ops.maximum(end - start + 1, 1)[..., None]  # (batch, rois, 1)
    p = ops.arange(bins, dtype="int32")
    lo = ops.clip(ops.floor_divide(p * n, bins) + start[..., None], 0, size)
    hi = ops.clip(-ops.floor_divide(-(p + 1) * n, bins) + start[..., None], 0, size)
    return lo, hi


def _range_max_table(x, size):
    """Sparse table along axis 1 of `x` (static length `size`): `(d0, levels, size, ...)`,
    where level k holds the maximum of the 2**k cells starting at each position (cells
    past the end count as -inf)."""
    levels = [x]
    step = 1
    while 2 * step <= size:
        prev = levels[-1]
        pad = ops.full_like(prev[:, :step], -float("inf"))
        levels.append(ops.maximum(prev, ops.concatenate([prev[:, step:], pad], axis=1)))
        step *= 2
    return ops.stack(levels, axis=1)


def _range_max(table, group, lo, hi, size):
    """Maxima over cells `lo <= t < hi` (at least one cell) read from `_range_max_table`.

    Args:
        table: `(groups, levels, size, ...)`.
        group: `(groups, q)` int32, the row of `table` each query reads (its own group).
        lo, hi: `(groups, q)` int32 window edges.

    Returns:
        `(groups, q, ...)`: two overlapping power-of-two windows cover [lo, hi) exactly.
    """
    levels = table.shape[1]
    length = ops.maximum(hi - lo, 1)
    level, span = ops.zeros_like(length), ops.ones_like(length)  # k, 2**k <= length
    for k in range(1, levels):
        fits = length >= 2 ** k
        level = ops.where(fits, k, level)
        span = ops.where(fits, 2 ** k, span)
    lo = ops.clip(lo, 0, size - 1)
    last = ops.clip(lo + length - span, 0, size - 1)
    flat = ops.reshape(table, (-1, *ops.shape(table)[3:]))
    base = (group * levels + level) * size
    first = ops.take(flat, base + lo, axis=0)
    second = ops.take(flat, base + last, axis=0)
    return ops.maximum(first, second)


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
        batch, num_rois = ops.shape(rois)[0], ops.shape(rois)[1]
        channels = ops.shape(features)[-1]
        lo_h, hi_h = _bin_edges(cells[..., 1], cells[..., 3], ph, height)  # (b, r, ph)
        lo_w, hi_w = _bin_edges(cells[..., 0], cells[..., 2], pw, width)  # (b, r, pw)
        # Separable range maxima read from sparse tables (log2 levels of the map), so the
        # work and the gradient's scatter do not grow with the map size per RoI: first over
        # the columns of each column bin (every row), then over the rows of each row bin.
        images = ops.broadcast_to(ops.arange(batch, dtype="int32")[:, None, None],
                                  ops.shape(lo_w))
        columns_table = _range_max_table(ops.transpose(features, (0, 2, 1, 3)), width)
        columns = _range_max(columns_table, ops.reshape(images, (batch, -1)),
                             ops.reshape(lo_w, (batch, -1)), ops.reshape(hi_w, (batch, -1)),
                             width)  # (b, r * pw, H, C)
        columns = ops.reshape(columns, (batch * num_rois, pw, height, channels))
        rows_table = _range_max_table(ops.transpose(columns, (0, 2, 1, 3)), height)
        regions = ops.reshape(ops.arange(batch * num_rois, dtype="int32"), (-1, 1))
        pooled = _range_max(rows_table, ops.broadcast_to(regions, (batch * num_rois, ph)),
                            ops.reshape(lo_h, (-1, ph)), ops.reshape(hi_h, (-1, ph)), height)
        pooled = ops.reshape(pooled, (batch, num_rois, ph, pw, channels))
        empty = ops.logical_or((hi_h <= lo_h)[:, :, :, None], (hi_w <= lo_w)[:, :, None, :])
        return ops.where(empty[..., None], ops.zeros_like(pooled), pooled)

    def compute_output_shape(self, input_shape):
        features, rois = input_shape
        return (features[0], rois[1], *self.pool_size, features[-1])

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size,
                "spatial_scale": self.spatial_scale}
