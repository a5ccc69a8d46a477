"""Max pooling that also returns where each maximum came from (SegNet, DeconvNet)."""

import keras
from keras import ops


def _pooled_size(size, pool, padding):
    if size is None:
        return None
    return -(-size // pool) if padding == "same" else size // pool


@keras.saving.register_keras_serializable(package="kerascv_suite")
class MaxPoolingWithArgmax(keras.layers.Layer):
    """Non-overlapping max pooling returning the pooled values and the argmax indices.

    Used by SegNet (Badrinarayanan, Kendall, Cipolla, "SegNet: A Deep Convolutional
    Encoder-Decoder Architecture for Image Segmentation", TPAMI 2017) and DeconvNet (Noh,
    Hong, Han, "Learning Deconvolution Network for Semantic Segmentation", ICCV 2015), whose
    decoders put each value back where its maximum was (see `MaxUnpooling`).

    Index convention (that of `tf.nn.max_pool_with_argmax` with
    `include_batch_in_index=False`): the index of the maximum at pre-pool position
    `(y, x, c)` of an image is the flat offset `(y * width + x) * channels + c` into that
    image's `(height, width, channels)` tensor, where `width` is the input width. Indices do
    not include the batch. Ties go to the first position in row-major window order.

    Windows do not overlap (strides equal `pool_size`). `padding="valid"` drops the last
    rows/columns that do not fill a window; `padding="same"` pads the bottom/right with
    `-inf` so the output is `ceil(size / pool)` (Caffe's rounding, which SegNet uses).

    Args:
        pool_size: int or `(pool_height, pool_width)`.
        padding: `"valid"` or `"same"`.

    Input shape: `(batch, height, width, channels)`.
    Output: `[pooled, indices]`, both `(batch, height // ph, width // pw, channels)`
    (ceil with `"same"`); `indices` is int32.

    Example:
        >>> pooled, indices = MaxPoolingWithArgmax(2)(x)  # x: (batch, 8, 8, 16)
    """

    def __init__(self, pool_size=2, padding="valid", **kwargs):
        super().__init__(**kwargs)
        pool_size = (pool_size, pool_size) if isinstance(pool_size, int) else pool_size
        self.pool_size = tuple(int(p) for p in pool_size)
        if len(self.pool_size) != 2 or min(self.pool_size) < 1:
            raise ValueError(
                f"pool_size must be a positive int or a pair of them. Received: pool_size={pool_size!r}"
            )
        if padding not in ("valid", "same"):
            raise ValueError(f"padding must be 'valid' or 'same'. Received: padding={padding!r}")
        self.padding = padding

    def call(self, inputs):
        ph, pw = self.pool_size
        _, height, width, channels = inputs.shape
        out_h = _pooled_size(height, ph, self.padding)
        out_w = _pooled_size(width, pw, self.padding)
        x = inputs
        if self.padding == "same":
            pad = [[0, 0], [0, out_h * ph - height], [0, out_w * pw - width], [0, 0]]
            x = ops.pad(x, pad, constant_values=float("-inf"))
        else:
            x = x[:, : out_h * ph, : out_w * pw, :]
        # (batch, out_h, ph, out_w, pw, C) -> (batch, out_h, out_w, C, ph * pw): one window
        # per row of the last axis, in row-major order.
        x = ops.reshape(x, (-1, out_h, ph, out_w, pw, channels))
        x = ops.transpose(x, (0, 1, 3, 5, 2, 4))
        x = ops.reshape(x, (-1, out_h, out_w, channels, ph * pw))
        pooled = ops.max(x, axis=-1)
        offset = ops.cast(ops.argmax(x, axis=-1), "int32")
        rows = ops.reshape(ops.arange(out_h, dtype="int32") * ph, (1, out_h, 1, 1))
        cols = ops.reshape(ops.arange(out_w, dtype="int32") * pw, (1, 1, out_w, 1))
        chans = ops.reshape(ops.arange(channels, dtype="int32"), (1, 1, 1, channels))
        y = rows + offset // pw
        x_pos = cols + offset % pw
        indices = (y * width + x_pos) * channels + chans
        return pooled, indices

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        shape = (
            batch,
            _pooled_size(height, self.pool_size[0], self.padding),
            _pooled_size(width, self.pool_size[1], self.padding),
            channels,
        )
        return shape, shape

    def compute_output_spec(self, inputs):
        shape = self.compute_output_shape(inputs.shape)[0]
        return (
            keras.KerasTensor(shape, dtype=inputs.dtype),
            keras.KerasTensor(shape, dtype="int32"),
        )

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size, "padding": self.padding}
