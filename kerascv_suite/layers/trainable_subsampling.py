"""LeNet-5's subsampling layer: average pooling with a trainable scale and bias per map."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kerascv_suite")
class TrainableSubsampling(keras.layers.Layer):
    """Average pooling followed by a trainable coefficient and bias per channel.

    The S2 and S4 layers of LeNet-5 (LeCun, Bottou, Bengio and Haffner, "Gradient-based
    learning applied to document recognition", Proc. IEEE 1998, section II-B): "The four
    inputs to a unit in S2 are added, then multiplied by a trainable coefficient, and added to
    a trainable bias." Averaging instead of adding only rescales the coefficient, whose
    initial value 1 then keeps the layer's output on the scale of its input. The squashing
    function the paper applies next is a separate `Activation` layer.

    Each channel has 2 parameters, so S2 (6 maps) has 12 and S4 (16 maps) has 32.

    Input shape: `(batch, height, width, channels)`.
    Output shape: `(batch, height // pool_size, width // pool_size, channels)` for the
    default `strides = pool_size`.

    Args:
        pool_size: side of the square pooling window.
        strides: pooling stride; defaults to `pool_size` (non-overlapping, as in the paper).
        coefficient_initializer: initializer of the per-channel coefficient.
        bias_initializer: initializer of the per-channel bias.
    """

    def __init__(
        self,
        pool_size=2,
        strides=None,
        coefficient_initializer="ones",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.pool_size = int(pool_size)
        self.strides = int(strides) if strides is not None else self.pool_size
        self.coefficient_initializer = keras.initializers.get(coefficient_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    def build(self, input_shape):
        channels = input_shape[-1]
        self.coefficient = self.add_weight(
            shape=(channels,), initializer=self.coefficient_initializer, name="coefficient"
        )
        self.bias = self.add_weight(
            shape=(channels,), initializer=self.bias_initializer, name="bias"
        )

    def call(self, inputs):
        pooled = ops.average_pool(
            inputs, pool_size=self.pool_size, strides=self.strides, padding="valid"
        )
        return pooled * self.coefficient + self.bias

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape

        def out(size):
            return None if size is None else (size - self.pool_size) // self.strides + 1

        return (batch, out(height), out(width), channels)

    def macs(self, input_shape):
        """One multiply-add per output value (input shape without batch)."""
        _, height, width, channels = self.compute_output_shape((None, *input_shape))
        return height * width * channels

    def get_config(self):
        return {
            **super().get_config(),
            "pool_size": self.pool_size,
            "strides": self.strides,
            "coefficient_initializer": keras.initializers.serialize(
                self.coefficient_initializer
            ),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
        }
