"""Unpooling by stored argmax indices (SegNet, DeconvNet)."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kerascv_suite")
class MaxUnpooling(keras.layers.Layer):
    """Puts each pooled value back at the position of its maximum; zeros elsewhere.

    The inverse of `MaxPoolingWithArgmax` as SegNet (Badrinarayanan et al., TPAMI 2017,
    Fig. 3) and DeconvNet (Noh, Hong, Han, ICCV 2015, Fig. 3) use it: the decoder's sparse
    upsampled map keeps the encoder's spatial detail.

    Called on `[values, indices]` or `[values, indices, reference]`. `indices` follow
    `MaxPoolingWithArgmax`'s convention (flat `(y * width + x) * channels + c` per image).
    The output has the `reference`'s height and width (the tensor that was pooled, needed when
    pooling dropped or padded rows/columns) and the `values`' channels; without a reference
    it is `(height * ph, width * pw)`. Every index must lie in the window of its value (true
    for indices from `MaxPoolingWithArgmax` with the same `pool_size`), which lets the layer
    place values with a one-hot over the window instead of a scatter: dense ops on every
    backend, with gradients flowing to `values`.

    Args:
        pool_size: int or `(pool_height, pool_width)` of the pooling being inverted.

    Input shapes: `values` and `indices` `(batch, h, w, channels)`; `reference`
    `(batch, height, width, any)`. Output shape: `(batch, height, width, channels)`.

    Example:
        >>> pooled, indices = MaxPoolingWithArgmax(2)(x)
        >>> y = MaxUnpooling(2)([pooled, indices, x])  # y.shape == x.shape
    """

    def __init__(self, pool_size=2, **kwargs):
        super().__init__(**kwargs)
        pool_size = (pool_size, pool_size) if isinstance(pool_size, int) else pool_size
        self.pool_size = tuple(int(p) for p in pool_size)
        if len(self.pool_size) != 2 or min(self.pool_size) < 1:
            raise ValueError(
                f"pool_size must be a positive int or a pair of them. Received: pool_size={pool_size!r}"
            )

    def _target_size(self, values_shape, reference_shape):
        if reference_shape is not None:
            return reference_shape[1], reference_shape[2]
        h, w = values_shape[1], values_shape[2]
        return (
            None if h is None else h * self.pool_size[0],
            None if w is None else w * self.pool_size[1],
        )

    def call(self, inputs):
        values, indices = inputs[0], inputs[1]
        reference = inputs[2] if len(inputs) > 2 else None
        ph, pw = self.pool_size
        _, in_h, in_w, channels = values.shape
        height, width = self._target_size(
            values.shape, None if reference is None else reference.shape
        )
        indices = ops.cast(indices, "int32")
        position = indices // channels
        y, x = position // width, position % width
        rows = ops.reshape(ops.arange(in_h, dtype="int32") * ph, (1, in_h, 1, 1))
        cols = ops.reshape(ops.arange(in_w, dtype="int32") * pw, (1, 1, in_w, 1))
        offset = (y - rows) * pw + (x - cols)
        # (batch, h, w, C, ph * pw), the value at its window offset and zeros elsewhere.
        spread = ops.one_hot(offset, ph * pw, dtype=values.dtype) * ops.expand_dims(values, -1)
        spread = ops.reshape(spread, (-1, in_h, in_w, channels, ph, pw))
        spread = ops.transpose(spread, (0, 1, 4, 2, 5, 3))
        out = ops.reshape(spread, (-1, in_h * ph, in_w * pw, channels))
        # "valid" pooling dropped trailing rows/columns (zeros here); "same" padded some.
        extra_h, extra_w = max(0, height - in_h * ph), max(0, width - in_w * pw)
        if extra_h or extra_w:
            out = ops.pad(out, [[0, 0], [0, extra_h], [0, extra_w], [0, 0]])
        return out[:, :height, :width, :]

    def compute_output_shape(self, input_shape):
        values_shape = input_shape[0]
        reference_shape = input_shape[2] if len(input_shape) > 2 else None
        height, width = self._target_size(values_shape, reference_shape)
        return (values_shape[0], height, width, values_shape[3])

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size}
