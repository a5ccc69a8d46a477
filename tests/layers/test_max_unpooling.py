import keras
import numpy as np
import pytest

from kerascv_suite.layers import MaxPoolingWithArgmax, MaxUnpooling
from kerascv_suite.testing import run_layer_test


class _PoolUnpool(keras.layers.Layer):
    """Pooling then unpooling, so run_layer_test gets indices that fit the windows."""

    def __init__(self, padding="valid", **kwargs):
        super().__init__(**kwargs)
        self.padding = padding
        self.pool = MaxPoolingWithArgmax(2, padding=padding)
        self.unpool = MaxUnpooling(2)

    def build(self, input_shape):
        pass  # no weights: the sublayers are weightless

    def call(self, x):
        pooled, index = self.pool(x)
        return self.unpool([pooled, index, x])

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "padding": self.padding}


@pytest.mark.backend
@pytest.mark.parametrize("padding", ["valid", "same"])
def test_inverts_pooling(padding):
    x = np.random.default_rng(0).normal(size=(2, 5, 7, 3)).astype("float32")
    pooled, index = MaxPoolingWithArgmax(2, padding=padding)(x)
    y = keras.ops.convert_to_numpy(MaxUnpooling(2)([pooled, index, x]))
    assert y.shape == x.shape
    # Reference: scatter each pooled value to its flat index (tf.nn convention), zeros elsewhere.
    expected = np.zeros((2, 5 * 7 * 3), "float32")
    np.put_along_axis(expected, keras.ops.convert_to_numpy(index).reshape(2, -1),
                      keras.ops.convert_to_numpy(pooled).reshape(2, -1), axis=1)
    np.testing.assert_allclose(y, expected.reshape(x.shape))


@pytest.mark.backend
def test_without_reference_doubles_size():
    layer = MaxUnpooling((2, 2))
    values = np.ones((1, 3, 4, 2), "float32")
    index = np.zeros((1, 3, 4, 2), "int32")
    # Index of the top-left of each window in an (6, 8, 2) image.
    rows, cols = np.meshgrid(np.arange(3) * 2, np.arange(4) * 2, indexing="ij")
    index[0] = ((rows * 8 + cols) * 2)[..., None] + np.arange(2)
    y = keras.ops.convert_to_numpy(layer([values, index]))
    assert y.shape == (1, 6, 8, 2)
    np.testing.assert_array_equal(y[0, ::2, ::2], 1.0)
    assert y.sum() == values.sum()
    assert layer.compute_output_shape([(None, 3, 4, 2), (None, 3, 4, 2)]) == (None, 6, 8, 2)


@pytest.mark.backend
def test_layer_contract_and_serialization():
    keras.saving.register_keras_serializable(package="tests")(_PoolUnpool)
    run_layer_test(_PoolUnpool, {}, input_shape=(2, 4, 6, 3), expected_output_shape=(2, 4, 6, 3))
    config = MaxUnpooling((2, 3)).get_config()
    assert MaxUnpooling.from_config(config).pool_size == (2, 3)


@pytest.mark.backend
def test_gradients_flow_to_values_in_one_training_step():
    inputs = keras.Input((4, 4, 2))
    features = keras.layers.Conv2D(3, 1, name="conv")(inputs)
    pooled, index = MaxPoolingWithArgmax(2)(features)
    scaled = keras.layers.Conv2D(3, 1, name="after_pool")(pooled)
    outputs = MaxUnpooling(2)([scaled, index, features])
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 4, 4, 2)).astype("float32")
    y = rng.normal(size=(4, 4, 4, 3)).astype("float32")
    before = [keras.ops.convert_to_numpy(w).copy() for w in model.trainable_weights]
    loss = model.fit(x, y, epochs=1, batch_size=4, verbose=0).history["loss"][0]
    assert np.isfinite(loss)
    after = [keras.ops.convert_to_numpy(w) for w in model.trainable_weights]
    # Both the layer after the pooling and the one before it learn through the unpooling.
    assert all(not np.array_equal(b, a) for b, a in zip(before, after))
