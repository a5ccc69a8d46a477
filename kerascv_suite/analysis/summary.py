"""Per-layer statistics of a functional Keras model.

For each layer: output shape, parameters (Keras counting: BN moving statistics count),
multiply-accumulates (MACs) and the receptive field and jump of its output on the input
image (Araujo et al. 2019, "Computing Receptive Fields of Convolutional Neural Networks"):

    r_out = r_in + (k_eff - 1) * j_in,   j_out = j_in * s,   k_eff = d * (k - 1) + 1

for a layer with kernel k, stride s and dilation d. Where a layer joins several tensors
(Concatenate, Add), the largest receptive field wins. Global pooling, Flatten and attention
over all positions make the receptive field the whole input. Transposed convolutions and
upsampling divide the jump by their stride.

MACs count the multiply-accumulates of convolutions and dense layers (a 5x5 convolution from
192 to 32 channels on a 28x28 output costs 28*28*5*5*192*32 = 120,422,400); normalization,
activations and pooling count 0. A custom layer reports its own cost through an optional
`macs(input_shape)` method (input shape without the batch dimension).
"""

from __future__ import annotations

import dataclasses
import math

import keras

_CONV_TYPES = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)
_TRANSPOSE_TYPES = (
    keras.layers.Conv1DTranspose,
    keras.layers.Conv2DTranspose,
    keras.layers.Conv3DTranspose,
)
_POOL_TYPES = (
    keras.layers.MaxPooling1D,
    keras.layers.MaxPooling2D,
    keras.layers.MaxPooling3D,
    keras.layers.AveragePooling1D,
    keras.layers.AveragePooling2D,
    keras.layers.AveragePooling3D,
)
_GLOBAL_TYPES = (
    keras.layers.GlobalAveragePooling1D,
    keras.layers.GlobalAveragePooling2D,
    keras.layers.GlobalAveragePooling3D,
    keras.layers.GlobalMaxPooling1D,
    keras.layers.GlobalMaxPooling2D,
    keras.layers.GlobalMaxPooling3D,
    keras.layers.Flatten,
)


@dataclasses.dataclass
class LayerStats:
    """One row of the summary. `receptive_field` and `jump` are per spatial axis."""

    name: str
    type: str
    output_shape: tuple
    params: int
    macs: int
    receptive_field: tuple | None
    jump: tuple | None

    def as_dict(self):
        return dataclasses.asdict(self)


@dataclasses.dataclass
class ModelStats:
    name: str
    input_shape: tuple
    layers: list
    params: int
    trainable_params: int
    non_trainable_params: int
    macs: int

    def as_dict(self):
        return {
            "model": self.name,
            "input_shape": list(self.input_shape),
            "layers": [layer.as_dict() for layer in self.layers],
            "totals": {
                "params": self.params,
                "trainable_params": self.trainable_params,
                "non_trainable_params": self.non_trainable_params,
                "macs": self.macs,
            },
        }


def _tuple(value, rank):
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * rank


def _shape(tensor):
    return tuple(tensor.shape[1:])


def _spatial(shape):
    # Channels-last: every axis between batch and channels is spatial.
    return shape[:-1]


def _conv_macs(layer, in_shape, out_shape):
    kernel = math.prod(_tuple(layer.kernel_size, len(out_shape) - 1))
    groups = getattr(layer, "groups", 1) or 1
    return math.prod(_spatial(out_shape)) * kernel * (in_shape[-1] // groups) * out_shape[-1]


def _layer_macs(layer, in_shapes, out_shape):
    in_shape = in_shapes[0] if in_shapes else ()
    if hasattr(layer, "macs") and callable(layer.macs):
        return int(layer.macs(in_shapes[0] if len(in_shapes) == 1 else in_shapes))
    if any(d is None for d in out_shape) or any(d is None for d in in_shape):
        return 0
    if isinstance(layer, keras.layers.SeparableConv2D):
        kernel = math.prod(_tuple(layer.kernel_size, 2))
        depth = math.prod(_spatial(out_shape)) * kernel * in_shape[-1] * layer.depth_multiplier
        point = math.prod(_spatial(out_shape)) * in_shape[-1] * layer.depth_multiplier * out_shape[-1]
        return depth + point
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        kernel = math.prod(_tuple(layer.kernel_size, 2))
        return math.prod(_spatial(out_shape)) * kernel * out_shape[-1]
    if isinstance(layer, _TRANSPOSE_TYPES):
        kernel = math.prod(_tuple(layer.kernel_size, len(in_shape) - 1))
        return math.prod(_spatial(in_shape)) * kernel * in_shape[-1] * out_shape[-1]
    if isinstance(layer, _CONV_TYPES):
        return _conv_macs(layer, in_shape, out_shape)
    if isinstance(layer, keras.layers.Dense):
        return math.prod(out_shape[:-1]) * in_shape[-1] * out_shape[-1]
    if isinstance(layer, keras.Model):
        return analyze_model(layer).macs
    return 0


def _receptive_field(layer, rf, jump, in_shape, out_shape):
    """(rf, jump) of the layer's output from the largest (rf, jump) among its inputs."""
    rank = len(rf)
    if isinstance(layer, _TRANSPOSE_TYPES):
        k = _tuple(layer.kernel_size, rank)
        s = _tuple(layer.strides, rank)
        new_jump = tuple(j / si for j, si in zip(jump, s))
        return tuple(r + (ki - 1) * j for r, ki, j in zip(rf, k, new_jump)), new_jump
    if isinstance(layer, keras.layers.UpSampling2D):
        s = _tuple(layer.size, rank)
        return rf, tuple(j / si for j, si in zip(jump, s))
    if isinstance(layer, (*_CONV_TYPES, *_POOL_TYPES)):
        k = _tuple(getattr(layer, "kernel_size", None) or layer.pool_size, rank)
        s = _tuple(layer.strides, rank)
        d = _tuple(getattr(layer, "dilation_rate", 1), rank)
        k_eff = tuple(di * (ki - 1) + 1 for ki, di in zip(k, d))
        return (
            tuple(r + (ke - 1) * j for r, ke, j in zip(rf, k_eff, jump)),
            tuple(j * si for j, si in zip(jump, s)),
        )
    if isinstance(layer, keras.layers.ZeroPadding2D):
        return rf, jump
    global_context = isinstance(layer, _GLOBAL_TYPES) or getattr(layer, "global_context", False)
    if global_context and len(in_shape) - 1 == rank and None not in in_shape:
        # Every input position contributes: the field spans the whole input feature map.
        size = _spatial(in_shape)
        return tuple(r + (n - 1) * j for r, n, j in zip(rf, size, jump)), jump
    return rf, jump


def _fmt_axis(values):
    if values is None:
        return "-"
    values = tuple(int(v) if float(v).is_integer() else round(float(v), 3) for v in values)
    return str(values[0]) if len(set(values)) == 1 else "x".join(str(v) for v in values)


def analyze_model(model) -> ModelStats:
    """Computes `ModelStats` for a built functional `keras.Model`.

    Args:
        model: a functional model with one image input `(batch, *spatial, channels)`.

    Returns:
        `ModelStats`: one `LayerStats` per layer in topological order, plus totals.
    """
    if not model.inputs:
        raise ValueError(f"Model {model.name!r} is not built; call it on an input first.")
    image_input = model.inputs[0]
    rank = len(image_input.shape) - 2
    # Receptive field and jump per tensor, keyed by the tensor object's id.
    field = {id(t): ((1,) * rank, (1,) * rank) for t in model.inputs}
    rows = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            rows.append(LayerStats(layer.name, "InputLayer", _shape(layer.output), 0, 0,
                                   (1,) * rank, (1,) * rank))
            continue
        inputs = keras.tree.flatten(layer.input)
        outputs = keras.tree.flatten(layer.output)
        in_shapes = [_shape(t) for t in inputs]
        known = [field[id(t)] for t in inputs if id(t) in field]
        if known:
            rf_in = tuple(max(f[0][a] for f in known) for a in range(rank))
            jump_in = tuple(max(f[1][a] for f in known) for a in range(rank))
            rf, jump = _receptive_field(layer, rf_in, jump_in, in_shapes[0], _shape(outputs[0]))
        else:
            rf = jump = None
        for t in outputs:
            if rf is not None:
                field[id(t)] = (rf, jump)
        out_shape = _shape(outputs[0])
        rows.append(
            LayerStats(
                name=layer.name,
                type=type(layer).__name__,
                output_shape=out_shape if len(outputs) == 1 else tuple(_shape(t) for t in outputs),
                params=int(layer.count_params()),
                macs=int(_layer_macs(layer, in_shapes, out_shape)),
                receptive_field=rf,
                jump=jump,
            )
        )
    trainable = sum(math.prod(w.shape) for w in model.trainable_weights)
    total = int(model.count_params())
    return ModelStats(
        name=model.name,
        input_shape=_shape(image_input),
        layers=rows,
        params=total,
        trainable_params=int(trainable),
        non_trainable_params=total - int(trainable),
        macs=sum(r.macs for r in rows),
    )


def format_table(stats: ModelStats) -> str:
    """Renders `ModelStats` as a fixed-width text table with totals."""
    header = ("Layer (type)", "Output shape", "Params", "MACs", "RF", "Jump")
    body = [
        (
            f"{r.name} ({r.type})",
            str(r.output_shape).replace(" ", ""),
            f"{r.params:,}",
            f"{r.macs:,}",
            _fmt_axis(r.receptive_field),
            _fmt_axis(r.jump),
        )
        for r in stats.layers
    ]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    align = ["<", "<", ">", ">", ">", ">"]

    def line(row):
        return "  ".join(f"{c:{a}{w}}" for c, a, w in zip(row, align, widths))

    rule = "-" * len(line(header))
    lines = [f"Model: {stats.name}  input {stats.input_shape}", rule, line(header), rule]
    lines += [line(row) for row in body]
    lines += [
        rule,
        f"Total params: {stats.params:,} (trainable {stats.trainable_params:,}, "
        f"non-trainable {stats.non_trainable_params:,})",
        f"Total MACs: {stats.macs:,}",
    ]
    return "\n".join(lines)
