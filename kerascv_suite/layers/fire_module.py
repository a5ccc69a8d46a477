"""SqueezeNet's fire module."""

import keras

from kerascv_suite.layers.block_layer import BlockLayer


def fire_module_layers(squeeze, expand1x1, expand3x3, name="fire", dtype=None):
    """Creates the core layers of a fire module, named as in the Caffe release
    (`fire2_squeeze1x1`, `fire2_relu_squeeze1x1`, `fire2_expand1x1`, ..., `fire2_concat`).

    Args:
        squeeze: filters of the 1x1 squeeze convolution (s1x1).
        expand1x1: filters of the 1x1 expand convolution (e1x1).
        expand3x3: filters of the 3x3 expand convolution (e3x3).
        name: prefix of the layer names.
    """
    layers = {}
    for key, filters, kernel in (
        ("squeeze1x1", squeeze, 1),
        ("expand1x1", expand1x1, 1),
        ("expand3x3", expand3x3, 3),
    ):
        layers[key] = keras.layers.Conv2D(
            filters, kernel, padding="same", name=f"{name}_{key}", dtype=dtype
        )
        layers[f"relu_{key}"] = keras.layers.Activation(
            "relu", name=f"{name}_relu_{key}", dtype=dtype
        )
    layers["concat"] = keras.layers.Concatenate(name=f"{name}_concat", dtype=dtype)
    return layers


def apply_fire_module(layers, x):
    """Squeeze, then the 1x1 and 3x3 expansions side by side, concatenated on channels."""
    s = layers["relu_squeeze1x1"](layers["squeeze1x1"](x))
    e1 = layers["relu_expand1x1"](layers["expand1x1"](s))
    e3 = layers["relu_expand3x3"](layers["expand3x3"](s))
    return layers["concat"]([e1, e3])


@keras.saving.register_keras_serializable(package="kerascv_suite")
class FireModule(BlockLayer):
    """Fire module.

    Iandola, Han, Moskewicz, Ashraf, Dally, Keutzer, "SqueezeNet: AlexNet-level accuracy with
    50x fewer parameters and <0.5MB model size", 2016 (Sec. 3.2): a 1x1 "squeeze"
    convolution, then 1x1 and 3x3 "expand" convolutions whose outputs are concatenated, each
    followed by ReLU.

    Args:
        squeeze: filters of the squeeze convolution.
        expand1x1: filters of the 1x1 expand convolution.
        expand3x3: filters of the 3x3 expand convolution (zero padding 1 keeps the size).

    Input shape: `(batch, height, width, channels)`.
    Output shape: `(batch, height, width, expand1x1 + expand3x3)`.
    """

    def __init__(self, squeeze, expand1x1, expand3x3, **kwargs):
        super().__init__(**kwargs)
        self.squeeze = int(squeeze)
        self.expand1x1 = int(expand1x1)
        self.expand3x3 = int(expand3x3)

    def make_layers(self, input_shape):
        return fire_module_layers(
            self.squeeze, self.expand1x1, self.expand3x3, name=self.name, dtype=self.dtype_policy
        )

    def apply_layers(self, layers, x):
        return apply_fire_module(layers, x)

    def get_config(self):
        return {
            **super().get_config(),
            "squeeze": self.squeeze,
            "expand1x1": self.expand1x1,
            "expand3x3": self.expand3x3,
        }
