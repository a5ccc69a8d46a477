"""A^2 double attention: gather global features, then distribute them to every position."""

import keras
from keras import ops

from kerascv_suite.layers.block_layer import BlockLayer


@keras.saving.register_keras_serializable(package="kerascv_suite")
class DoubleAttention(BlockLayer):
    """Double attention block.

    Chen, Kalantidis, Li, Yan, Feng, "A^2-Nets: Double Attention Networks", NeurIPS 2018
    (Sec. 3, Fig. 2). For an input `X` with `N = height * width` positions:

    - `A = conv1x1(X)`: `(N, c_m)` features;
    - `B = softmax_over_positions(conv1x1(X))`: `(N, c_n)`, `c_n` attention maps;
    - `V = softmax_over_channels(conv1x1(X))`: `(N, c_n)`, one attention vector per position;
    - gather: `G = A^T B`, `(c_m, c_n)`, `c_n` global descriptors (second-order pooling);
    - distribute: `Z = V G^T`, `(N, c_m)`, each position picks a mix of descriptors;
    - output: `X + conv1x1(Z)` back to the input channels (a residual block, so it can be
      inserted anywhere without changing shapes).

    Args:
        c_m: channels of the global descriptors; `None` uses `channels // reduction`.
        c_n: number of attention maps (descriptors); `None` uses `channels // reduction`.
        reduction: used for `c_m`/`c_n` left as None.

    Input shape: `(batch, height, width, channels)`. Output shape: the same.

    Example:
        >>> y = DoubleAttention(c_m=128, c_n=128)(x)  # x: (batch, 28, 28, 512)
    """

    def __init__(self, c_m=None, c_n=None, reduction=4, **kwargs):
        super().__init__(**kwargs)
        if int(reduction) < 1:
            raise ValueError(
                f"reduction must be a positive integer. Received: reduction={reduction!r}"
            )
        self.c_m = None if c_m is None else int(c_m)
        self.c_n = None if c_n is None else int(c_n)
        self.reduction = int(reduction)

    def _sizes(self, channels):
        default = max(1, int(channels) // self.reduction)
        return self.c_m or default, self.c_n or default

    def make_layers(self, input_shape):
        channels = input_shape[-1]
        c_m, c_n = self._sizes(channels)

        def conv(filters, key):
            return keras.layers.Conv2D(
                filters, 1, name=f"{self.name}_{key}", dtype=self.dtype_policy
            )

        return {
            "conv_a": conv(c_m, "conv_a"),
            "conv_b": conv(c_n, "conv_b"),
            "conv_v": conv(c_n, "conv_v"),
            "conv_out": conv(channels, "conv_out"),
        }

    def apply_layers(self, layers, x):
        a = layers["conv_a"](x)
        b = layers["conv_b"](x)
        v = layers["conv_v"](x)
        z = _gather_distribute(a, b, v)
        return x + layers["conv_out"](z)

    def extra_macs(self, input_shape):
        # Gather (N x c_m x c_n) and distribute (N x c_n x c_m) products.
        c_m, c_n = self._sizes(input_shape[-1])
        return 2 * input_shape[0] * input_shape[1] * c_m * c_n

    def get_config(self):
        return {
            **super().get_config(),
            "c_m": self.c_m,
            "c_n": self.c_n,
            "reduction": self.reduction,
        }


def _gather_distribute(a, b, v):
    """`G = A^T softmax_pos(B)`, `Z = softmax_ch(V) G^T` on `(batch, h, w, c)` maps.

    Einsums over the two spatial axes avoid flattening positions, and the softmax over
    positions is written out (`exp(b - max) / sum` over axes 1 and 2) rather than
    `ops.softmax(b, axis=(1, 2))`, which reshapes with the static shape: inputs with unknown
    batch, height and width (a traced export) work too.
    """
    shifted = ops.exp(b - ops.max(b, axis=(1, 2), keepdims=True))
    attention_maps = shifted / ops.sum(shifted, axis=(1, 2), keepdims=True)
    attention_vectors = ops.softmax(v, axis=-1)
    descriptors = ops.einsum("bhwm,bhwk->bmk", a, attention_maps)
    return ops.einsum("bhwk,bmk->bhwm", attention_vectors, descriptors)
