"""ResNet's basic and bottleneck residual blocks, optionally with Squeeze-and-Excitation."""

import keras

from kerascv_suite.layers.block_layer import BlockLayer
from kerascv_suite.layers.squeeze_excite import apply_squeeze_excite, squeeze_excite_layers

# keras.applications' ResNet epsilon (keras/src/applications/resnet.py), kept so its weights load.
BN_EPSILON = 1.001e-5
EXPANSION = {"basic": 1, "bottleneck": 4}
# Where a strided bottleneck puts its stride: on the first 1x1 convolution (He et al. 2016 and
# keras.applications, "v1"), or on the 3x3 convolution (torchvision's ResNet-50/101/152,
# "v1.5", after Goyal et al., "Accurate, Large Minibatch SGD", 2017).
STRIDE_PLACEMENTS = ("1x1", "3x3")


def residual_block_layers(
    kind,
    filters,
    in_channels,
    stride=1,
    se_ratio=None,
    use_bias=True,
    epsilon=BN_EPSILON,
    stride_on="1x1",
    name="block",
    dtype=None,
):
    """Creates the core layers of a residual block, named as keras.applications' ResNet
    (`{name}_0_conv` / `_0_bn` shortcut, `{name}_1_conv`, ..., `{name}_add`, `{name}_out`).

    Args:
        kind: `"basic"` (two 3x3 convolutions) or `"bottleneck"` (1x1, 3x3, 1x1 with
            4x expansion).
        filters: width of the block's 3x3 convolution; the block outputs
            `filters * EXPANSION[kind]` channels.
        in_channels: channels of the block's input.
        stride: stride of the block (on the first convolution, as keras.applications,
            unless `stride_on="3x3"`).
        se_ratio: if set, a Squeeze-and-Excitation block with this ratio rescales the
            residual branch before the addition (Hu et al. 2018, Fig. 3).
        use_bias: biases on the convolutions (keras.applications' ResNet has them).
        epsilon: BatchNormalization epsilon.
        stride_on: a bottleneck's strided convolution, one of `STRIDE_PLACEMENTS`: `"1x1"`
            (the first 1x1, keras.applications) or `"3x3"` (torchvision's "v1.5": the 3x3,
            padded by one pixel on every side as torchvision's `conv3x3`). Basic blocks
            always stride their first 3x3.

    Returns:
        A dict of layers for `apply_residual_block`. A projection shortcut (He et al. 2016,
        option B) is created only when the output shape differs from the input's.
    """
    if kind not in EXPANSION:
        raise ValueError(f"kind must be one of {tuple(EXPANSION)}. Received: kind={kind!r}")
    if stride_on not in STRIDE_PLACEMENTS:
        raise ValueError(
            f"stride_on must be one of {STRIDE_PLACEMENTS}. Received: stride_on={stride_on!r}"
        )
    out_channels = filters * EXPANSION[kind]

    def conv(filters_, kernel, key, strides=1, padding="valid"):
        return keras.layers.Conv2D(
            filters_, kernel, strides=strides, padding=padding, use_bias=use_bias,
            name=f"{name}_{key}", dtype=dtype,
        )

    def bn(key):
        return keras.layers.BatchNormalization(
            axis=-1, epsilon=epsilon, name=f"{name}_{key}", dtype=dtype
        )

    def relu(key):
        return keras.layers.Activation("relu", name=f"{name}_{key}", dtype=dtype)

    layers = {}
    if stride != 1 or in_channels != out_channels:
        layers["0_conv"] = conv(out_channels, 1, "0_conv", strides=stride)
        layers["0_bn"] = bn("0_bn")
    if kind == "bottleneck" and (stride == 1 or stride_on == "1x1"):
        layers["1_conv"] = conv(filters, 1, "1_conv", strides=stride)
        layers["2_conv"] = conv(filters, 3, "2_conv", padding="same")
    elif kind == "bottleneck":
        layers["1_conv"] = conv(filters, 1, "1_conv")
        # Symmetric padding as torchvision's conv3x3 (see the basic block below).
        layers["2_pad"] = keras.layers.ZeroPadding2D(1, name=f"{name}_2_pad", dtype=dtype)
        layers["2_conv"] = conv(filters, 3, "2_conv", strides=stride)
    if kind == "bottleneck":
        layers["3_conv"] = conv(out_channels, 1, "3_conv")
        stages = ("1", "2", "3")
    else:
        if stride != 1:
            # Symmetric padding as in the paper's (and torchvision's) 3x3/2 convolution;
            # "same" would pad only bottom/right on even inputs.
            layers["1_pad"] = keras.layers.ZeroPadding2D(1, name=f"{name}_1_pad", dtype=dtype)
            layers["1_conv"] = conv(filters, 3, "1_conv", strides=stride)
        else:
            layers["1_conv"] = conv(filters, 3, "1_conv", padding="same")
        layers["2_conv"] = conv(filters, 3, "2_conv", padding="same")
        stages = ("1", "2")
    for i, stage in enumerate(stages):
        layers[f"{stage}_bn"] = bn(f"{stage}_bn")
        if i < len(stages) - 1:
            layers[f"{stage}_relu"] = relu(f"{stage}_relu")
    if se_ratio:
        layers.update(
            {
                f"se_{k}": v
                for k, v in squeeze_excite_layers(
                    out_channels, se_ratio, name=f"{name}_se", dtype=dtype
                ).items()
            }
        )
    layers["add"] = keras.layers.Add(name=f"{name}_add", dtype=dtype)
    layers["out"] = relu("out")
    return layers


def apply_residual_block(layers, x):
    """`relu(shortcut(x) + F(x))`, in keras.applications' call order (shortcut first)."""
    shortcut = x
    if "0_conv" in layers:
        shortcut = layers["0_bn"](layers["0_conv"](x))
    stage = 1
    while f"{stage}_conv" in layers:
        if f"{stage}_pad" in layers:
            x = layers[f"{stage}_pad"](x)
        x = layers[f"{stage}_bn"](layers[f"{stage}_conv"](x))
        if f"{stage}_relu" in layers:
            x = layers[f"{stage}_relu"](x)
        stage += 1
    if "se_squeeze" in layers:
        x = apply_squeeze_excite({k[3:]: v for k, v in layers.items() if k.startswith("se_")}, x)
    return layers["out"](layers["add"]([shortcut, x]))


class _ResidualBlock(BlockLayer):
    kind = None

    def __init__(self, filters, stride=1, se_ratio=None, use_bias=True, epsilon=BN_EPSILON,
                 stride_on="1x1", **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.stride = int(stride)
        self.se_ratio = None if se_ratio is None else int(se_ratio)
        self.use_bias = bool(use_bias)
        self.epsilon = float(epsilon)
        self.stride_on = str(stride_on)

    def make_layers(self, input_shape):
        return residual_block_layers(
            self.kind, self.filters, input_shape[-1], stride=self.stride,
            se_ratio=self.se_ratio, use_bias=self.use_bias, epsilon=self.epsilon,
            stride_on=self.stride_on, name=self.name, dtype=self.dtype_policy,
        )

    def apply_layers(self, layers, x):
        return apply_residual_block(layers, x)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "stride": self.stride,
            "se_ratio": self.se_ratio,
            "use_bias": self.use_bias,
            "epsilon": self.epsilon,
            "stride_on": self.stride_on,
        }


@keras.saving.register_keras_serializable(package="kerascv_suite")
class BasicBlock(_ResidualBlock):
    """Basic residual block (two 3x3 convolutions) of ResNet-18/34.

    He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", CVPR 2016 (Fig. 2,
    Fig. 5 left): `relu(shortcut(x) + bn(conv3x3(relu(bn(conv3x3(x))))))`, with a 1x1
    projection shortcut + BN where the shape changes (option B).

    Args:
        filters: output channels.
        stride: stride of the first convolution and of the shortcut.
        se_ratio: optional Squeeze-and-Excitation ratio (SE on the residual branch).
        use_bias: biases on the convolutions.
        epsilon: BatchNormalization epsilon.

    Input shape: `(batch, height, width, channels)`.
    Output shape: `(batch, ceil(height / stride), ceil(width / stride), filters)`.
    """

    kind = "basic"


@keras.saving.register_keras_serializable(package="kerascv_suite")
class BottleneckBlock(_ResidualBlock):
    """Bottleneck residual block (1x1, 3x3, 1x1) of ResNet-50/101/152.

    He et al. 2016 (Fig. 5 right), laid out as keras.applications' `residual_block_v1`: the
    stride sits on the first 1x1 convolution (or on the 3x3 with `stride_on="3x3"`,
    torchvision's "v1.5"), the last 1x1 convolution expands to `4 * filters` channels, and a
    1x1 projection shortcut + BN is used where the shape changes.

    Args:
        filters: width of the 3x3 convolution; the block outputs `4 * filters` channels.
        stride: stride of the strided convolution (see `stride_on`) and of the shortcut.
        se_ratio: optional Squeeze-and-Excitation ratio (SE-ResNet, Hu et al. 2018, Fig. 3).
        use_bias: biases on the convolutions.
        epsilon: BatchNormalization epsilon.
        stride_on: `"1x1"` (keras.applications) or `"3x3"` (torchvision's ResNet v1.5).

    Input shape: `(batch, height, width, channels)`.
    Output shape: `(batch, ceil(height / stride), ceil(width / stride), 4 * filters)`.
    """

    kind = "bottleneck"
