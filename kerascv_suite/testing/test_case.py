"""`run_layer_test` and `run_model_test`, in the spirit of keras-hub's `TestCase`.

Both check what every layer and model of the project promises on every backend: it builds,
predicts with the documented shapes, trains one step with a finite loss that changes the
weights, and survives a `.keras` save/load round trip (without `safe_mode=False`) with the
same outputs.
"""

import os
import tempfile

import keras
import numpy as np


def _random_like(shapes, seed):
    rng = np.random.default_rng(seed)
    # map_shape_structure keeps a shape tuple such as (2, 5) whole (map_structure would
    # descend into its ints), so single-output models work as well as dicts of shapes.
    return keras.tree.map_shape_structure(
        lambda s: rng.uniform(0.0, 1.0, size=tuple(s)).astype("float32"), shapes
    )


def _to_numpy(structure):
    return keras.tree.map_structure(keras.ops.convert_to_numpy, structure)


def _assert_close(actual, expected, atol, rtol, what):
    actual, expected = keras.tree.flatten(actual), keras.tree.flatten(expected)
    assert len(actual) == len(expected), f"{what}: {len(actual)} outputs != {len(expected)}"
    for a, e in zip(actual, expected):
        np.testing.assert_allclose(np.asarray(a), np.asarray(e), atol=atol, rtol=rtol, err_msg=what)


def _shapes_of(structure):
    return keras.tree.map_structure(lambda t: tuple(t.shape), structure)


def _weights_snapshot(model):
    return [np.array(keras.ops.convert_to_numpy(w)) for w in model.trainable_weights]


def _train_one_step(model, x, y, loss):
    before = _weights_snapshot(model)
    if loss is None:
        loss = keras.tree.map_structure(lambda _: "mse", y)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01), loss=loss)
    history = model.fit(x, y, batch_size=len(keras.tree.flatten(x)[0]), epochs=1, verbose=0)
    loss_value = history.history["loss"][-1]
    assert np.isfinite(loss_value), f"training loss is not finite: {loss_value}"
    after = _weights_snapshot(model)
    if before:
        changed = any(not np.array_equal(b, a) for b, a in zip(before, after))
        assert changed, "one training step changed no trainable weight"
    return loss_value


def _infer(model, x):
    if keras.backend.backend() == "jax":
        # Eager JAX compiles every op the first time it meets it (about 10 s for a ResNet-50
        # on 2 cores); one jitted predict costs a third of that.
        return model.predict(x, batch_size=len(keras.tree.flatten(x)[0]), verbose=0)
    return _to_numpy(model(x, training=False))


def _roundtrip(model, x, atol, rtol):
    expected = _infer(model, x)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        model.save(path)
        restored = keras.saving.load_model(path)
    actual = _infer(restored, x)
    _assert_close(actual, expected, atol, rtol, "outputs after .keras save/load")
    return restored


def run_layer_test(
    layer_cls,
    init_kwargs,
    input_shape,
    expected_output_shape=None,
    expected_num_trainable_weights=None,
    expected_num_non_trainable_weights=None,
    run_training=True,
    atol=1e-5,
    rtol=1e-5,
    seed=0,
):
    """Checks a layer end to end and returns it.

    Args:
        layer_cls: the layer class.
        init_kwargs: constructor arguments.
        input_shape: full input shape including the batch, e.g. `(2, 8, 8, 3)`; a list of
            shapes for a layer with several inputs.
        expected_output_shape: the full output shape (or a structure of shapes).
        expected_num_trainable_weights / expected_num_non_trainable_weights: weight counts.
        run_training: also train one step (set False for layers without trainable weights
            whose gradient is undefined, e.g. argmax pooling).
    """
    layer = layer_cls(**init_kwargs)
    config = layer.get_config()
    clone = layer_cls.from_config(config)
    assert clone.get_config() == config, "get_config/from_config round trip changed the config"

    x = _random_like(input_shape, seed)
    y = layer(x)
    if expected_output_shape is not None:
        assert _shapes_of(y) == expected_output_shape, (
            f"output shape {_shapes_of(y)} != expected {expected_output_shape}"
        )
    if expected_num_trainable_weights is not None:
        assert len(layer.trainable_weights) == expected_num_trainable_weights
    if expected_num_non_trainable_weights is not None:
        assert len(layer.non_trainable_weights) == expected_num_non_trainable_weights

    shapes = keras.tree.map_shape_structure(lambda s: tuple(s[1:]), input_shape)
    inputs = keras.tree.map_shape_structure(lambda s: keras.Input(shape=s), shapes)
    model = keras.Model(inputs, layer_cls(**init_kwargs)(inputs))
    assert _shapes_of(model(x)) == _shapes_of(y), "layer inside a functional model changed shape"
    if run_training and model.trainable_weights:
        target = _random_like(_shapes_of(model(x)), seed + 1)
        _train_one_step(model, x, target, loss=None)
    _roundtrip(model, x, atol, rtol)
    return layer


def run_model_test(
    model,
    input_shape,
    expected_output_shape=None,
    loss=None,
    targets=None,
    run_training=True,
    atol=1e-4,
    rtol=1e-4,
    seed=0,
    input_range=(0.0, 255.0),
):
    """Checks a model end to end: predict, one training step, `.keras` round trip.

    Args:
        model: a built `keras.Model`.
        input_shape: full input shape including the batch, e.g. `(2, 32, 32, 3)`.
        expected_output_shape: full output shape, or a structure of shapes for models with
            several outputs (e.g. `{"predictions": (2, 10), "aux1": (2, 10)}`).
        loss: the loss structure for `compile`; MSE on every output when None.
        targets: training targets; random values of the output shapes when None.
        input_range: images are drawn uniformly from this range (pixels by default).

    Returns:
        The model restored from the `.keras` file.
    """
    rng = np.random.default_rng(seed)
    low, high = input_range
    x = rng.uniform(low, high, size=input_shape).astype("float32")
    y = model.predict(x, verbose=0)
    shapes = _shapes_of(y)
    if expected_output_shape is not None:
        assert shapes == expected_output_shape, (
            f"output shape {shapes} != expected {expected_output_shape}"
        )
    for value in keras.tree.flatten(y):
        assert np.all(np.isfinite(value)), "prediction has non-finite values"
    if run_training:
        if targets is None:
            targets = _random_like(shapes, seed + 1)
        _train_one_step(model, x, targets, loss)
    return _roundtrip(model, x, atol, rtol)
