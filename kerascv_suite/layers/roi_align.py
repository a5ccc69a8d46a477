"""RoIAlign (Mask R-CNN): bilinear sampling of each region of interest, no quantization."""

import keras
from keras import ops


def _axis_weights(start, length, bins, sampling_ratio, size, aligned):
    """`(batch, rois, bins, size)` averaged bilinear weights along one axis.

    Sample i of bin p sits at `start + p * b + (i + 0.5) * b / s` (b = length / bins,
    s = sampling_ratio). Bilinear interpolation factorises over the two axes, and so does the
    average over the s x s samples of a bin, so a bin value is `Wy @ features @ Wx^T`. The
    border rules are torchvision's `roi_align` kernel: a sample beyond [-1, size] contributes
    0; one in [-1, 0] is read at 0; one past the last cell is read at the last cell.
    """
    if not aligned:
        length = ops.maximum(length, 1.0)
    bin_size = length / bins  # (b, r)
    p = ops.arange(bins, dtype="float32")[:, None]
    i = ops.arange(sampling_ratio, dtype="float32")[None, :]
    pos = (start[..., None, None] + p * bin_size[..., None, None]
           + (i + 0.5) * bin_size[..., None, None] / sampling_ratio)  # (b, r, bins, s)
    inside = ops.logical_and(pos >= -1.0, pos <= float(size))
    pos = ops.maximum(pos, 0.0)
    low = ops.minimum(ops.floor(pos), float(size - 1))
    high = ops.minimum(low + 1.0, float(size - 1))
    pos = ops.minimum(pos, float(size - 1))
    frac = pos - low
    cells = ops.arange(size, dtype="float32")
    weights = ((1.0 - frac)[..., None] * ops.cast(cells == low[..., None], "float32")
               + frac[..., None] * ops.cast(cells == high[..., None], "float32"))
    weights = weights * ops.cast(inside, "float32")[..., None]
    return ops.mean(weights, axis=-2)  # average the s samples: (b, r, bins, size)


@keras.saving.register_keras_serializable(package="kerascv_suite")
class RoIAlign(keras.layers.Layer):
    """Average of bilinearly sampled points in each bin of each region of interest.

    He, Gkioxari, Dollár, Girshick, "Mask R-CNN", ICCV 2017, sec. 3: no rounding of RoI or
    bin edges; each bin averages `sampling_ratio x sampling_ratio` regularly spaced bilinear
    samples. `aligned=True` shifts by half a cell so pixel centres line up (Detectron2's
    `ROIAlignV2`); `aligned=False` is the original (torchvision's default) and keeps RoIs at
    least one cell wide. The adaptive sampling ratio (`ceil(roi / bins)`) is not offered:
    shapes must stay static on every backend.

    Args:
        pool_size: int or `(pooled_height, pooled_width)` (7 for box heads, 14 for masks).
        spatial_scale: feature-map cells per input pixel.
        sampling_ratio: samples per bin along each axis (>= 1; 2 in Mask R-CNN).
        aligned: half-cell alignment.

    Input: `[features, rois]`, features `(batch, height, width, channels)` (static height,
    width), rois `(batch, num_rois, 4)` xyxy in input-image pixels.
    Output: `(batch, num_rois, pooled_height, pooled_width, channels)`.

    Example:
        >>> crops = RoIAlign(7, 1 / 16, sampling_ratio=2)([features, proposals])
    """

    def __init__(self, pool_size=7, spatial_scale=1.0 / 16, sampling_ratio=2, aligned=False,
                 **kwargs):
        super().__init__(**kwargs)
        size = (pool_size, pool_size) if isinstance(pool_size, int) else tuple(pool_size)
        if len(size) != 2 or min(size) < 1:
            raise ValueError(f"pool_size must be a positive int or a pair. "
                             f"Received: pool_size={pool_size!r}")
        if int(sampling_ratio) < 1:
            raise ValueError("sampling_ratio must be >= 1 (static shapes). "
                             f"Received: sampling_ratio={sampling_ratio!r}")
        self.pool_size = tuple(int(s) for s in size)
        self.spatial_scale = float(spatial_scale)
        self.sampling_ratio = int(sampling_ratio)
        self.aligned = bool(aligned)

    def call(self, inputs):
        features, rois = inputs
        height, width = features.shape[1], features.shape[2]
        if height is None or width is None:
            raise ValueError("RoIAlign needs a static feature-map height and width. "
                             f"Received: features.shape={features.shape}")
        offset = 0.5 if self.aligned else 0.0
        boxes = ops.cast(rois, "float32") * self.spatial_scale - offset
        ph, pw = self.pool_size
        wy = _axis_weights(boxes[..., 1], boxes[..., 3] - boxes[..., 1], ph,
                           self.sampling_ratio, height, self.aligned)
        wx = _axis_weights(boxes[..., 0], boxes[..., 2] - boxes[..., 0], pw,
                           self.sampling_ratio, width, self.aligned)
        wy, wx = ops.cast(wy, features.dtype), ops.cast(wx, features.dtype)
        rows = ops.einsum("brph,bhwc->brpwc", wy, features)
        return ops.einsum("brpwc,brqw->brpqc", rows, wx)

    def compute_output_shape(self, input_shape):
        features, rois = input_shape
        return (features[0], rois[1], *self.pool_size, features[-1])

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size,
                "spatial_scale": self.spatial_scale, "sampling_ratio": self.sampling_ratio,
                "aligned": self.aligned}
