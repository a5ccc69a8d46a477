"""Channel-wise L2 normalization with a learnable scale (SSD's conv4_3_norm)."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kerascv_suite")
class L2Normalization(keras.layers.Layer):
    """Normalizes each feature vector to unit L2 norm, then scales it per channel.

    Liu et al., "SSD: Single Shot MultiBox Detector", ECCV 2016, sec. 3.1, after Liu, Rabinovich
    and Berg, "ParseNet: Looking Wider to See Better" (2015): conv4_3 features have a larger
    scale than the deeper layers, so they are L2-normalized across channels at each location
    and rescaled by a learned per-channel factor, initialized to 20.

    Args:
        scale: initial value of every channel's scale (20 in the paper).
        epsilon: added to the norm so an all-zero vector stays finite.

    Input shape: `(batch, height, width, channels)` (any rank; the last axis is normalized).
    Output shape: the same. Weights: `gamma` of shape `(channels,)`.
    """

    def __init__(self, scale=20.0, epsilon=1e-10, **kwargs):
        super().__init__(**kwargs)
        self.scale = float(scale)
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        self.gamma = self.add_weight(
            name="gamma", shape=(input_shape[-1],),
            initializer=keras.initializers.Constant(self.scale), trainable=True)

    def call(self, inputs):
        norm = ops.sqrt(ops.sum(ops.square(inputs), axis=-1, keepdims=True) + self.epsilon)
        return inputs / norm * self.gamma

    def compute_output_shape(self, input_shape):
        return input_shape

    def macs(self, input_shape):
        # A square-accumulate and a scale per element, one division per location.
        elements = 1
        for dim in input_shape:
            elements *= int(dim)
        return 2 * elements

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "epsilon": self.epsilon}
