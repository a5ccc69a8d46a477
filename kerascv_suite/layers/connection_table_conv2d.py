"""A convolution whose output maps each see only a chosen subset of the input maps."""

import keras
import numpy as np
from keras import ops


@keras.saving.register_keras_serializable(package="kerascv_suite")
class ConnectionTableConv2D(keras.layers.Layer):
    """2D convolution restricted by a connection table (LeNet-5's C3 layer).

    LeCun, Bottou, Bengio and Haffner, "Gradient-based learning applied to document
    recognition" (Proc. IEEE 1998), section II-B and Table I: each C3 feature map is connected
    to a subset of the S2 maps, which "keeps the number of connections within reasonable
    bounds" and "forces a break of symmetry in the network". Only the connected kernels are
    weights: the layer stores `(kernel_h, kernel_w, num_connections)` values and expands
    them to a dense `(kernel_h, kernel_w, in_channels, filters)` kernel with zeros elsewhere,
    so unconnected input maps get neither weights nor gradients.

    Input shape: `(batch, height, width, in_channels)`.
    Output shape: `(batch, new_height, new_width, len(table))`.

    Args:
        table: one sequence of input-channel indices per output map, e.g. the 16 entries of
            LeNet-5's Table I; `filters` is `len(table)`.
        kernel_size: int or `(height, width)`.
        padding: `"valid"` or `"same"`.
        use_bias: whether each output map has a bias.
        kernel_initializer, bias_initializer: initializers. `"glorot_uniform"` computes its
            fans from the packed kernel shape; pass an explicit initializer to match
            another scheme.
    """

    def __init__(
        self,
        table,
        kernel_size,
        padding="valid",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.table = [sorted(int(i) for i in row) for row in table]
        if not self.table or any(not row for row in self.table):
            raise ValueError(f"Every output map needs at least one input. Received: table={table!r}")
        if any(len(set(row)) != len(row) for row in self.table):
            raise ValueError(f"A table row repeats an input channel. Received: table={table!r}")
        if isinstance(kernel_size, int):
            kernel_size = (kernel_size, kernel_size)
        self.kernel_size = tuple(int(k) for k in kernel_size)
        if padding not in ("valid", "same"):
            raise ValueError(f"padding must be 'valid' or 'same'. Received: padding={padding!r}")
        self.padding = padding
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    @property
    def filters(self):
        return len(self.table)

    @property
    def num_connections(self):
        return sum(len(row) for row in self.table)

    def build(self, input_shape):
        in_channels = input_shape[-1]
        used = max(max(row) for row in self.table)
        if used >= in_channels or min(min(row) for row in self.table) < 0:
            raise ValueError(
                f"The table uses input channel {used}, but the input has {in_channels}. "
                f"Received: input_shape={input_shape}"
            )
        self.kernel = self.add_weight(
            shape=(*self.kernel_size, self.num_connections),
            initializer=self.kernel_initializer,
            name="kernel",
        )
        self.bias = (
            self.add_weight(shape=(self.filters,), initializer=self.bias_initializer, name="bias")
            if self.use_bias
            else None
        )
        # For every (input, output) pair of the dense kernel, the index of its packed kernel,
        # or `num_connections` (a zero column appended in `call`) where there is no connection.
        gather = np.full((in_channels, self.filters), self.num_connections, dtype="int32")
        position = 0
        for out_channel, row in enumerate(self.table):
            for in_channel in row:
                gather[in_channel, out_channel] = position
                position += 1
        self._gather_index = gather.reshape(-1)
        self._in_channels = in_channels

    def dense_kernel(self):
        """The `(kernel_h, kernel_w, in_channels, filters)` kernel, zero where unconnected."""
        zeros = ops.zeros((*self.kernel_size, 1), dtype=self.kernel.dtype)
        packed = ops.concatenate([self.kernel, zeros], axis=-1)
        dense = ops.take(packed, ops.convert_to_tensor(self._gather_index), axis=-1)
        return ops.reshape(dense, (*self.kernel_size, self._in_channels, self.filters))

    def call(self, inputs):
        kernel = ops.cast(self.dense_kernel(), self.compute_dtype)
        outputs = ops.conv(inputs, kernel, strides=1, padding=self.padding)
        if self.use_bias:
            outputs = outputs + ops.cast(self.bias, self.compute_dtype)
        return outputs

    def compute_output_shape(self, input_shape):
        batch, height, width, _ = input_shape
        if self.padding == "same":
            return (batch, height, width, self.filters)

        def out(size, k):
            return None if size is None else size - k + 1

        return (batch, out(height, self.kernel_size[0]), out(width, self.kernel_size[1]), self.filters)

    def macs(self, input_shape):
        """Multiply-adds of the connected kernels only (input shape without batch)."""
        _, height, width, _ = self.compute_output_shape((None, *input_shape))
        return height * width * self.num_connections * self.kernel_size[0] * self.kernel_size[1]

    def get_config(self):
        return {
            **super().get_config(),
            "table": self.table,
            "kernel_size": self.kernel_size,
            "padding": self.padding,
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
        }
