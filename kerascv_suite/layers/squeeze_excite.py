"""Squeeze-and-Excitation: channel attention from globally pooled features."""

import keras

from kerascv_suite.layers.block_layer import BlockLayer


def squeeze_excite_layers(channels, ratio=16, name="se", dtype=None):
    """Creates the core layers of an SE block (layer names as keras.applications EfficientNet).

    Args:
        channels: channels `C` of the features the block rescales.
        ratio: reduction ratio `r`; the hidden layer has `max(1, C // r)` units.
        name: prefix of the layer names (`{name}_squeeze`, `{name}_reduce`, ...).
    """
    hidden = max(1, int(channels) // int(ratio))
    return {
        "squeeze": keras.layers.GlobalAveragePooling2D(
            keepdims=True, name=f"{name}_squeeze", dtype=dtype
        ),
        "reduce": keras.layers.Conv2D(
            hidden, 1, activation="relu", name=f"{name}_reduce", dtype=dtype
        ),
        "expand": keras.layers.Conv2D(
            channels, 1, activation="sigmoid", name=f"{name}_expand", dtype=dtype
        ),
        "excite": keras.layers.Multiply(name=f"{name}_excite", dtype=dtype),
    }


def apply_squeeze_excite(layers, x):
    """`x * sigmoid(W2 relu(W1 avgpool(x)))`, the per-channel gate broadcast over positions."""
    gate = layers["expand"](layers["reduce"](layers["squeeze"](x)))
    return layers["excite"]([x, gate])


@keras.saving.register_keras_serializable(package="kerascv_suite")
class SqueezeExcite(BlockLayer):
    """Squeeze-and-Excitation block.

    Hu, Shen, Sun, "Squeeze-and-Excitation Networks", CVPR 2018 (Fig. 2/3): global average
    pooling, a bottleneck of two fully connected layers (ReLU, then sigmoid) with reduction
    ratio `r`, and a channel-wise rescaling of the input. The fully connected layers are 1x1
    convolutions on the pooled `(batch, 1, 1, channels)` tensor, which is the same map.

    Args:
        ratio: reduction ratio `r` (16 in the paper).

    Input shape: `(batch, height, width, channels)`. Output shape: the same.

    Example:
        >>> y = SqueezeExcite(ratio=16)(x)  # x: (batch, 14, 14, 256)
    """

    def __init__(self, ratio=16, **kwargs):
        super().__init__(**kwargs)
        if int(ratio) < 1:
            raise ValueError(f"ratio must be a positive integer. Received: ratio={ratio!r}")
        self.ratio = int(ratio)

    def make_layers(self, input_shape):
        return squeeze_excite_layers(
            input_shape[-1], self.ratio, name=self.name, dtype=self.dtype_policy
        )

    def apply_layers(self, layers, x):
        return apply_squeeze_excite(layers, x)

    def get_config(self):
        return {**super().get_config(), "ratio": self.ratio}
