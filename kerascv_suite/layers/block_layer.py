"""A base for layers that wrap a block of core Keras layers.

Model builders keep their graphs flat (one core layer per node, so `kcv summary` and
keras.applications weight files see every convolution). The same blocks are also offered as
single layers for use in any model. Each block is written once, as two functions:

- `make(...) -> dict[str, Layer]` creates the block's core layers, named from a prefix;
- `apply(layers, x) -> tensor` wires them.

Builders call both on symbolic tensors; a `BlockLayer` subclass calls `make` in `build` and
`apply` in `call`.
"""

import math

import keras


def _core_macs(layer, in_shape, out_shape):
    """Multiply-accumulates of a Conv2D or Dense sublayer (0 for the others)."""
    if isinstance(layer, keras.layers.Conv2D):
        kernel = math.prod(layer.kernel_size)
        return math.prod(out_shape[1:-1]) * kernel * (in_shape[-1] // layer.groups) * out_shape[-1]
    if isinstance(layer, keras.layers.Dense):
        return math.prod(out_shape[1:-1]) * in_shape[-1] * out_shape[-1]
    return 0


class _MacsRecorder(dict):
    """A dict of layers whose items, when called, also add up their MACs."""

    def __init__(self, layers):
        super().__init__(layers)
        self.total = 0

    def __getitem__(self, key):
        layer = super().__getitem__(key)

        def call(x):
            y = layer(x)
            if not isinstance(x, (list, tuple)):
                self.total += _core_macs(layer, tuple(x.shape), tuple(y.shape))
            return y

        return call


class BlockLayer(keras.layers.Layer):
    """Base class: subclasses define `make_layers(input_shape)` and `apply_layers(layers, x)`.

    `macs(input_shape)` adds up the Conv2D/Dense sublayers plus `extra_macs(input_shape)`,
    which subclasses with multiply-adds of their own (e.g. attention products) override.
    """

    def extra_macs(self, input_shape):
        return 0

    def build(self, input_shape):
        self.block = self.make_layers(tuple(input_shape))
        # A symbolic pass builds every sublayer, so weights exist before a .keras load.
        self.apply_layers(self.block, keras.KerasTensor(tuple(input_shape), dtype=self.compute_dtype))

    def call(self, inputs):
        return self.apply_layers(self.block, inputs)

    def compute_output_shape(self, input_shape):
        if not self.built:
            self.build(input_shape)
        x = keras.KerasTensor(tuple(input_shape), dtype=self.compute_dtype)
        return tuple(self.apply_layers(self.block, x).shape)

    def macs(self, input_shape):
        """MACs for one example; `input_shape` excludes the batch dimension."""
        shape = (1, *input_shape)
        if not self.built:
            self.build((None, *input_shape))
        recorder = _MacsRecorder(self.block)
        self.apply_layers(recorder, keras.KerasTensor(shape, dtype=self.compute_dtype))
        return recorder.total + self.extra_macs(tuple(input_shape))
