"""Inception modules: the v1 module of GoogLeNet and the factorized modules of Inception v2.

An Inception block is data: a tuple of *branches* run in parallel on the same input and
concatenated on the channel axis. A branch is a tuple of steps applied in order:

- `Conv(name, filters, kernel, strides, padding)`: a convolution followed by ReLU. In the
  `"relu"` style (GoogLeNet) it is one `Conv2D` with a bias and a ReLU activation, named
  `{prefix}_{name}`; in the `"bn"` style (Inception v2/v3) it is `Conv2D` without bias,
  `BatchNormalization` and `Activation`, named `{prefix}_{name}_conv`, `_bn`, `_relu`.
- `Pool(name, kind, size, strides, padding)`: `"max"` or `"avg"` pooling.
- `Split(name, convs)`: convolutions applied in parallel to the branch's tensor and
  concatenated (the expanded filter bank of Figure 7 in Szegedy et al. 2016).

`make_block_layers` creates the sublayers of a block and `apply_block` wires them. Model
builders call both on symbolic tensors, so their graphs stay flat (core layers with predictable
names for `kcv summary` and for keras.applications weight files); the Layer classes below
create the same sublayers in `__init__` and apply them in `call`, so the block is written once.
"""

import dataclasses

import keras

CONV_STYLES = ("relu", "bn")


@dataclasses.dataclass(frozen=True)
class Conv:
    name: str
    filters: int
    kernel: tuple = (1, 1)
    strides: int = 1
    padding: str = "same"


@dataclasses.dataclass(frozen=True)
class Pool:
    name: str
    kind: str = "max"
    size: int = 3
    strides: int = 1
    padding: str = "same"


@dataclasses.dataclass(frozen=True)
class Split:
    name: str
    convs: tuple


# === Branch specs of each module ===


def inception_v1_branches(
    filters_1x1,
    filters_3x3_reduce,
    filters_3x3,
    filters_5x5_reduce,
    filters_5x5,
    filters_pool_proj,
):
    """The Inception module with dimension reductions (Szegedy et al. 2015, Figure 2b).

    The 1x1 "reduce" convolutions before the 3x3 and 5x5 convolutions cut the cost of the
    expensive convolutions; the pool branch is 3x3 max pooling followed by a 1x1 projection.
    """
    return (
        (Conv("1x1", filters_1x1),),
        (Conv("3x3_reduce", filters_3x3_reduce), Conv("3x3", filters_3x3, (3, 3))),
        (Conv("5x5_reduce", filters_5x5_reduce), Conv("5x5", filters_5x5, (5, 5))),
        (Pool("pool", "max"), Conv("pool_proj", filters_pool_proj)),
    )


def inception_v2_a_branches(
    filters_1x1,
    filters_3x3_reduce,
    filters_3x3,
    filters_3x3dbl_reduce,
    filters_3x3dbl,
    filters_pool_proj,
):
    """Figure 5 of Szegedy et al. 2016: the 5x5 convolution replaced by two 3x3 convolutions.

    Two stacked 3x3 convolutions see a 5x5 window with 18/25 of the cost of one 5x5 (section
    3.1). The pool branch uses average pooling, as the reference implementations do.
    """
    return (
        (Conv("1x1", filters_1x1),),
        (Conv("3x3_reduce", filters_3x3_reduce), Conv("3x3", filters_3x3, (3, 3))),
        (
            Conv("3x3dbl_reduce", filters_3x3dbl_reduce),
            Conv("3x3dbl_1", filters_3x3dbl, (3, 3)),
            Conv("3x3dbl_2", filters_3x3dbl, (3, 3)),
        ),
        (Pool("pool", "avg"), Conv("pool_proj", filters_pool_proj)),
    )


def inception_v2_b_branches(
    filters_1x1,
    filters_nxn_reduce,
    filters_nxn,
    filters_nxn_dbl_reduce,
    filters_nxn_dbl,
    filters_pool_proj,
    n=7,
):
    """Figure 6 of Szegedy et al. 2016: each nxn convolution factorized into 1xn then nx1.

    A 1xn followed by an nx1 convolution sees an nxn window with 2/n of the cost (section 3.2);
    the paper uses n=7 on the 17x17 grid. Intermediate convolutions keep the reduce width and
    the last one of each branch has the output width.
    """
    return (
        (Conv("1x1", filters_1x1),),
        (
            Conv("nxn_reduce", filters_nxn_reduce),
            Conv("nxn_1", filters_nxn_reduce, (1, n)),
            Conv("nxn_2", filters_nxn, (n, 1)),
        ),
        (
            Conv("nxn_dbl_reduce", filters_nxn_dbl_reduce),
            Conv("nxn_dbl_1", filters_nxn_dbl_reduce, (1, n)),
            Conv("nxn_dbl_2", filters_nxn_dbl_reduce, (n, 1)),
            Conv("nxn_dbl_3", filters_nxn_dbl_reduce, (1, n)),
            Conv("nxn_dbl_4", filters_nxn_dbl, (n, 1)),
        ),
        (Pool("pool", "avg"), Conv("pool_proj", filters_pool_proj)),
    )


def inception_v2_c_branches(
    filters_1x1,
    filters_3x3_reduce,
    filters_3x3,
    filters_3x3dbl_reduce,
    filters_3x3dbl,
    filters_pool_proj,
):
    """Figure 7 of Szegedy et al. 2016: expanded filter bank outputs on the 8x8 grid.

    The last 3x3 of each branch is replaced by parallel 1x3 and 3x1 convolutions whose outputs
    are concatenated, so the module emits wide, high-dimensional representations (section 2,
    principle 2). Each of the two splits outputs `2 * filters_3x3` / `2 * filters_3x3dbl`.
    """
    return (
        (Conv("1x1", filters_1x1),),
        (
            Conv("3x3_reduce", filters_3x3_reduce),
            Split(
                "3x3",
                (Conv("3x3_1x3", filters_3x3, (1, 3)), Conv("3x3_3x1", filters_3x3, (3, 1))),
            ),
        ),
        (
            Conv("3x3dbl_reduce", filters_3x3dbl_reduce),
            Conv("3x3dbl_1", filters_3x3dbl, (3, 3)),
            Split(
                "3x3dbl",
                (
                    Conv("3x3dbl_1x3", filters_3x3dbl, (1, 3)),
                    Conv("3x3dbl_3x1", filters_3x3dbl, (3, 1)),
                ),
            ),
        ),
        (Pool("pool", "avg"), Conv("pool_proj", filters_pool_proj)),
    )


def inception_v2_reduction_branches(
    filters_3x3_reduce, filters_3x3, filters_3x3dbl_reduce, filters_3x3dbl
):
    """Figure 10 of Szegedy et al. 2016: grid-size reduction with parallel stride-2 branches.

    Pooling and strided convolutions run side by side and are concatenated, which halves the
    grid without the representational bottleneck of pooling first (section 5). A branch with
    `filters_3x3_reduce=0` goes straight to its stride-2 3x3 convolution.
    """
    conv_branch = (Conv("3x3", filters_3x3, (3, 3), 2, "valid"),)
    if filters_3x3_reduce:
        conv_branch = (Conv("3x3_reduce", filters_3x3_reduce),) + conv_branch
    return (
        conv_branch,
        (
            Conv("3x3dbl_reduce", filters_3x3dbl_reduce),
            Conv("3x3dbl_1", filters_3x3dbl, (3, 3)),
            Conv("3x3dbl_2", filters_3x3dbl, (3, 3), 2, "valid"),
        ),
        (Pool("pool", "max", 3, 2, "valid"),),
    )


# === Creating and wiring the sublayers ===


def conv_layers(prefix, conv, style):
    """The layers of one `Conv` step, keyed by their name suffix (see the module docstring)."""
    if style not in CONV_STYLES:
        raise ValueError(f"style must be one of {CONV_STYLES}. Received: style={style!r}")
    common = dict(strides=conv.strides, padding=conv.padding)
    if style == "relu":
        layer = keras.layers.Conv2D(
            conv.filters, conv.kernel, activation="relu", name=f"{prefix}_{conv.name}", **common
        )
        return {conv.name: layer}
    # The bias would be cancelled by BN's mean, and BN's scale by the ReLU that follows; the
    # keras.applications / TF-slim Inception models drop both the same way.
    return {
        f"{conv.name}_conv": keras.layers.Conv2D(
            conv.filters, conv.kernel, use_bias=False, name=f"{prefix}_{conv.name}_conv", **common
        ),
        f"{conv.name}_bn": keras.layers.BatchNormalization(
            scale=False, name=f"{prefix}_{conv.name}_bn"
        ),
        f"{conv.name}_relu": keras.layers.Activation("relu", name=f"{prefix}_{conv.name}_relu"),
    }


def _pool_layer(prefix, pool):
    cls = {"max": keras.layers.MaxPooling2D, "avg": keras.layers.AveragePooling2D}[pool.kind]
    return cls(pool.size, strides=pool.strides, padding=pool.padding, name=f"{prefix}_{pool.name}")


def make_block_layers(prefix, branches, style, output_name=None):
    """Creates the sublayers of a block, keyed by their name suffix.

    Args:
        prefix: prefix of every layer name, e.g. `"inception_3a"`.
        branches: the block spec (see the module docstring).
        style: `"relu"` (conv + bias + ReLU) or `"bn"` (conv + BatchNormalization + ReLU).
        output_name: name of the final concatenation; `f"{prefix}_output"` when None.

    Returns:
        A dict from name suffix to layer, in creation order.
    """
    layers = {}
    for branch in branches:
        for step in branch:
            if isinstance(step, Conv):
                layers.update(conv_layers(prefix, step, style))
            elif isinstance(step, Pool):
                layers[step.name] = _pool_layer(prefix, step)
            else:
                for conv in step.convs:
                    layers.update(conv_layers(prefix, conv, style))
                layers[step.name] = keras.layers.Concatenate(name=f"{prefix}_{step.name}")
    layers["output"] = keras.layers.Concatenate(name=output_name or f"{prefix}_output")
    return layers


def _conv_step(layers, conv, x, call):
    if conv.name in layers:
        return call(layers[conv.name], x)
    for suffix in ("conv", "bn", "relu"):
        x = call(layers[f"{conv.name}_{suffix}"], x)
    return x


def _run_block(layers, branches, x, call):
    outputs = []
    for branch in branches:
        y = x
        for step in branch:
            if isinstance(step, Conv):
                y = _conv_step(layers, step, y, call)
            elif isinstance(step, Pool):
                y = call(layers[step.name], y)
            else:
                parts = [_conv_step(layers, conv, y, call) for conv in step.convs]
                y = call(layers[step.name], parts)
        outputs.append(y)
    return call(layers["output"], outputs)


def apply_block(layers, branches, x, training=None):
    """Applies the layers of `make_block_layers` to a tensor (symbolic or eager)."""

    def call(layer, inputs):
        if isinstance(layer, keras.layers.BatchNormalization):
            return layer(inputs, training=training)
        return layer(inputs)

    return _run_block(layers, branches, x, call)


def block_output_shape(layers, branches, input_shape, build=False):
    """Output shape of a block; with `build=True` also builds every sublayer on the way."""

    def call(layer, shape):
        if build and not layer.built:
            layer.build(shape)
        return layer.compute_output_shape(shape)

    return tuple(_run_block(layers, branches, tuple(input_shape), call))


# === Layer classes ===


class _InceptionBlock(keras.layers.Layer):
    """Base of the Inception Layer classes: the block spec comes from `spec_fn(**block_args)`."""

    style = "bn"
    spec_fn = None

    def __init__(self, block_args, **kwargs):
        super().__init__(**kwargs)
        self.block_args = block_args
        self.branches = type(self).spec_fn(**block_args)
        self.block_layers = make_block_layers(self.name, self.branches, self.style)

    def build(self, input_shape):
        block_output_shape(self.block_layers, self.branches, input_shape, build=True)
        self.built = True

    def call(self, inputs, training=None):
        return apply_block(self.block_layers, self.branches, inputs, training=training)

    def compute_output_shape(self, input_shape):
        return block_output_shape(self.block_layers, self.branches, input_shape)

    def get_config(self):
        return {**super().get_config(), **self.block_args}


@keras.saving.register_keras_serializable(package="kerascv_suite")
class InceptionModule(_InceptionBlock):
    """The GoogLeNet Inception module with dimension reductions.

    Szegedy et al., "Going Deeper with Convolutions", CVPR 2015, Figure 2(b). Four parallel
    branches, concatenated on the channel axis: 1x1; 1x1 -> 3x3; 1x1 -> 5x5; 3x3 max pool ->
    1x1. Every convolution has a bias and a ReLU, as in the paper (no batch normalization).

    Args:
        filters_1x1, filters_3x3_reduce, filters_3x3, filters_5x5_reduce, filters_5x5,
            filters_pool_proj: the six filter counts, the columns of the paper's Table 1.

    Input shape: `(batch, height, width, channels)`.
    Output shape: `(batch, height, width, filters_1x1 + filters_3x3 + filters_5x5 +
    filters_pool_proj)`.

    Example:
        >>> block = InceptionModule(64, 96, 128, 16, 32, 32)  # inception (3a)
        >>> block(np.zeros((1, 28, 28, 192))).shape
        (1, 28, 28, 256)
    """

    style = "relu"
    spec_fn = staticmethod(inception_v1_branches)

    def __init__(
        self,
        filters_1x1,
        filters_3x3_reduce,
        filters_3x3,
        filters_5x5_reduce,
        filters_5x5,
        filters_pool_proj,
        **kwargs,
    ):
        block_args = dict(
            filters_1x1=filters_1x1,
            filters_3x3_reduce=filters_3x3_reduce,
            filters_3x3=filters_3x3,
            filters_5x5_reduce=filters_5x5_reduce,
            filters_5x5=filters_5x5,
            filters_pool_proj=filters_pool_proj,
        )
        super().__init__(block_args, **kwargs)


@keras.saving.register_keras_serializable(package="kerascv_suite")
class InceptionV2ModuleA(_InceptionBlock):
    """Inception v2 module with the 5x5 convolution factorized into two 3x3 convolutions.

    Szegedy et al., "Rethinking the Inception Architecture for Computer Vision", CVPR 2016,
    Figure 5 (the 35x35 modules of Table 1). Convolutions are followed by batch normalization
    and ReLU.

    Args:
        filters_1x1, filters_3x3_reduce, filters_3x3, filters_3x3dbl_reduce, filters_3x3dbl,
            filters_pool_proj: widths of the 1x1 branch, the 1x1 -> 3x3 branch, the
            1x1 -> 3x3 -> 3x3 branch and the average-pool -> 1x1 branch.

    Input shape: `(batch, height, width, channels)`.
    Output shape: `(batch, height, width, filters_1x1 + filters_3x3 + filters_3x3dbl +
    filters_pool_proj)`.
    """

    spec_fn = staticmethod(inception_v2_a_branches)

    def __init__(
        self,
        filters_1x1,
        filters_3x3_reduce,
        filters_3x3,
        filters_3x3dbl_reduce,
        filters_3x3dbl,
        filters_pool_proj,
        **kwargs,
    ):
        block_args = dict(
            filters_1x1=filters_1x1,
            filters_3x3_reduce=filters_3x3_reduce,
            filters_3x3=filters_3x3,
            filters_3x3dbl_reduce=filters_3x3dbl_reduce,
            filters_3x3dbl=filters_3x3dbl,
            filters_pool_proj=filters_pool_proj,
        )
        super().__init__(block_args, **kwargs)


@keras.saving.register_keras_serializable(package="kerascv_suite")
class InceptionV2ModuleB(_InceptionBlock):
    """Inception v2 module with nxn convolutions factorized into 1xn and nx1.

    Szegedy et al., "Rethinking the Inception Architecture for Computer Vision", CVPR 2016,
    Figure 6 (the 17x17 modules of Table 1, n=7). Convolutions are followed by batch
    normalization and ReLU.

    Args:
        filters_1x1, filters_nxn_reduce, filters_nxn, filters_nxn_dbl_reduce, filters_nxn_dbl,
            filters_pool_proj: widths of the 1x1 branch, the 1x1 -> 1xn -> nx1 branch, the
            1x1 -> 1xn -> nx1 -> 1xn -> nx1 branch and the average-pool -> 1x1 branch.
        n: the factorized kernel size.

    Input shape: `(batch, height, width, channels)`.
    Output shape: `(batch, height, width, filters_1x1 + filters_nxn + filters_nxn_dbl +
    filters_pool_proj)`.
    """

    spec_fn = staticmethod(inception_v2_b_branches)

    def __init__(
        self,
        filters_1x1,
        filters_nxn_reduce,
        filters_nxn,
        filters_nxn_dbl_reduce,
        filters_nxn_dbl,
        filters_pool_proj,
        n=7,
        **kwargs,
    ):
        block_args = dict(
            filters_1x1=filters_1x1,
            filters_nxn_reduce=filters_nxn_reduce,
            filters_nxn=filters_nxn,
            filters_nxn_dbl_reduce=filters_nxn_dbl_reduce,
            filters_nxn_dbl=filters_nxn_dbl,
            filters_pool_proj=filters_pool_proj,
            n=n,
        )
        super().__init__(block_args, **kwargs)


@keras.saving.register_keras_serializable(package="kerascv_suite")
class InceptionV2ModuleC(_InceptionBlock):
    """Inception v2 module with expanded filter bank outputs.

    Szegedy et al., "Rethinking the Inception Architecture for Computer Vision", CVPR 2016,
    Figure 7 (the 8x8 modules of Table 1). Convolutions are followed by batch normalization
    and ReLU.

    Args:
        filters_1x1, filters_3x3_reduce, filters_3x3, filters_3x3dbl_reduce, filters_3x3dbl,
            filters_pool_proj: widths of the 1x1 branch, the 1x1 -> [1x3, 3x1] branch, the
            1x1 -> 3x3 -> [1x3, 3x1] branch and the average-pool -> 1x1 branch.

    Input shape: `(batch, height, width, channels)`.
    Output shape: `(batch, height, width, filters_1x1 + 2 * filters_3x3 + 2 * filters_3x3dbl +
    filters_pool_proj)`.
    """

    spec_fn = staticmethod(inception_v2_c_branches)

    def __init__(
        self,
        filters_1x1,
        filters_3x3_reduce,
        filters_3x3,
        filters_3x3dbl_reduce,
        filters_3x3dbl,
        filters_pool_proj,
        **kwargs,
    ):
        block_args = dict(
            filters_1x1=filters_1x1,
            filters_3x3_reduce=filters_3x3_reduce,
            filters_3x3=filters_3x3,
            filters_3x3dbl_reduce=filters_3x3dbl_reduce,
            filters_3x3dbl=filters_3x3dbl,
            filters_pool_proj=filters_pool_proj,
        )
        super().__init__(block_args, **kwargs)


@keras.saving.register_keras_serializable(package="kerascv_suite")
class InceptionV2Reduction(_InceptionBlock):
    """Inception v2 grid-size reduction: parallel stride-2 convolutions and max pooling.

    Szegedy et al., "Rethinking the Inception Architecture for Computer Vision", CVPR 2016,
    Figure 10 (35x35 -> 17x17 and 17x17 -> 8x8 in Table 1). Convolutions are followed by batch
    normalization and ReLU.

    Args:
        filters_3x3_reduce: width of the 1x1 before the stride-2 3x3; 0 for none.
        filters_3x3: width of the stride-2 3x3 branch.
        filters_3x3dbl_reduce, filters_3x3dbl: widths of the 1x1 -> 3x3 -> 3x3/2 branch.

    Input shape: `(batch, height, width, channels)`.
    Output shape: `(batch, (height - 3) // 2 + 1, (width - 3) // 2 + 1, filters_3x3 +
    filters_3x3dbl + channels)`.
    """

    spec_fn = staticmethod(inception_v2_reduction_branches)

    def __init__(
        self, filters_3x3_reduce, filters_3x3, filters_3x3dbl_reduce, filters_3x3dbl, **kwargs
    ):
        block_args = dict(
            filters_3x3_reduce=filters_3x3_reduce,
            filters_3x3=filters_3x3,
            filters_3x3dbl_reduce=filters_3x3dbl_reduce,
            filters_3x3dbl=filters_3x3dbl,
        )
        super().__init__(block_args, **kwargs)
