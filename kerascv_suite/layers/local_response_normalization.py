"""Local response normalization across channels (Krizhevsky et al., 2012, section 3.3)."""

import keras
from keras import ops

ALPHA_CONVENTIONS = ("paper", "caffe")


@keras.saving.register_keras_serializable(package="kerascv_suite")
class LocalResponseNormalization(keras.layers.Layer):
    """Normalizes each activation by the energy of its neighbouring channels.

    From Krizhevsky, Sutskever and Hinton, "ImageNet Classification with Deep Convolutional
    Neural Networks" (NIPS 2012), section 3.3:

        b[..., c] = a[..., c] / (k + alpha * sum_{j=c-n//2}^{c+n//2} a[..., j] ** 2) ** beta

    where the sum runs over the `size` (n) channels centred on `c`, clipped at the first and
    last channel. The paper's values are k=2, n=5, alpha=1e-4, beta=0.75.

    Two conventions for `alpha` exist and give different results for the same numbers:
      - `"paper"`: alpha multiplies the sum, as in the paper's formula and in
        `tf.nn.local_response_normalization` (with `depth_radius = size // 2`).
      - `"caffe"`: alpha is divided by `size` (alpha / n times the sum), as in Caffe's `LRN`
        layer and `torch.nn.LocalResponseNorm`; use it for weights trained in Caffe.

    Input shape: `(batch, ..., channels)` (channels last, statically known).
    Output shape: the same as the input. No weights.

    Args:
        size: odd number of channels n in the window.
        alpha: scale of the sum of squares.
        beta: exponent.
        k: additive bias that keeps the denominator away from zero.
        alpha_convention: `"paper"` or `"caffe"`, see above.

    Example:
        >>> lrn = LocalResponseNormalization(size=5, alpha=1e-4, beta=0.75, k=2.0)
        >>> lrn(np.ones((1, 4, 4, 8), "float32")).shape
        (1, 4, 4, 8)
    """

    def __init__(
        self, size=5, alpha=1e-4, beta=0.75, k=2.0, alpha_convention="paper", **kwargs
    ):
        super().__init__(**kwargs)
        if not isinstance(size, int) or size < 1 or size % 2 == 0:
            raise ValueError(f"size must be a positive odd integer. Received: size={size!r}")
        if alpha_convention not in ALPHA_CONVENTIONS:
            raise ValueError(
                f"alpha_convention must be one of {ALPHA_CONVENTIONS}. "
                f"Received: alpha_convention={alpha_convention!r}"
            )
        self.size = size
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.k = float(k)
        self.alpha_convention = alpha_convention

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        channels = x.shape[-1]
        radius = self.size // 2
        squares = ops.square(x)
        # Zero channels on both sides make the window clip at the edges, as in the paper.
        padded = ops.pad(squares, [[0, 0]] * (len(x.shape) - 1) + [[radius, radius]])
        window_sum = padded[..., 0:channels]
        for offset in range(1, self.size):
            window_sum = window_sum + padded[..., offset : offset + channels]
        alpha = self.alpha / self.size if self.alpha_convention == "caffe" else self.alpha
        return x / ops.power(self.k + alpha * window_sum, self.beta)

    def compute_output_shape(self, input_shape):
        return input_shape

    def macs(self, input_shape):
        """One square, `size` additions and one scaling per element (input shape w/o batch)."""
        elements = 1
        for dim in input_shape:
            elements *= int(dim)
        return elements * (self.size + 2)

    def get_config(self):
        return {
            **super().get_config(),
            "size": self.size,
            "alpha": self.alpha,
            "beta": self.beta,
            "k": self.k,
            "alpha_convention": self.alpha_convention,
        }
