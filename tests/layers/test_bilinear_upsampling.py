import keras
import numpy as np
import pytest

from kerascv_suite.layers import BilinearInitializer, bilinear_filter, bilinear_upsampling


def test_filter_matches_fcn_upsample_filt():
    # FCN's surgery.upsample_filt(4): factor 2, centre 1.5 -> ramp [0.25, 0.75, 0.75, 0.25].
    np.testing.assert_allclose(bilinear_filter(4), np.outer([0.25, 0.75, 0.75, 0.25], [0.25, 0.75, 0.75, 0.25]))
    # Odd size 3: factor 2, centre 1 -> ramp [0.5, 1, 0.5].
    np.testing.assert_allclose(bilinear_filter(3)[1], [0.5, 1.0, 0.5])


@pytest.mark.backend
@pytest.mark.parametrize("factor", [2, 3, 4, 8])
def test_interpolates_a_linear_ramp_bilinearly(factor):
    size = 8
    layer = bilinear_upsampling(2, factor)
    ramp = np.arange(size, dtype="float32")
    x = np.stack([np.add.outer(ramp, np.zeros(size)), np.add.outer(2 * ramp, ramp)], -1)
    y = keras.ops.convert_to_numpy(layer(x[None].astype("float32")))[0]
    assert y.shape == (size * factor, size * factor, 2)
    # Half-pixel convention: output o samples input coordinate (o + 0.5) / factor - 0.5.
    u = (np.arange(size * factor) + 0.5) / factor - 0.5
    expected = np.stack([np.add.outer(u, np.zeros_like(u)), np.add.outer(2 * u, u)], -1)
    inner = slice(factor, (size - 1) * factor)  # away from the zero-padded borders
    np.testing.assert_allclose(y[inner, inner], expected[inner, inner], atol=1e-4)


@pytest.mark.backend
def test_constant_input_stays_constant_inside():
    y = keras.ops.convert_to_numpy(bilinear_upsampling(3, 4)(np.full((1, 6, 6, 3), 5.0, "float32")))
    np.testing.assert_allclose(y[0, 4:20, 4:20], 5.0, atol=1e-5)


@pytest.mark.backend
def test_trains_and_serializes():
    inputs = keras.Input((4, 4, 2))
    model = keras.Model(inputs, bilinear_upsampling(2, 2, name="upscore")(inputs))
    restored = keras.Model.from_config(model.get_config())
    assert isinstance(restored.get_layer("upscore").kernel_initializer, BilinearInitializer)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    before = keras.ops.convert_to_numpy(model.trainable_weights[0]).copy()
    x = np.random.default_rng(0).normal(size=(2, 4, 4, 2)).astype("float32")
    model.fit(x, np.zeros((2, 8, 8, 2), "float32"), verbose=0)
    assert not np.array_equal(before, keras.ops.convert_to_numpy(model.trainable_weights[0]))
    frozen = bilinear_upsampling(2, 2, trainable=False)
    frozen.build((None, 4, 4, 2))
    assert not frozen.trainable_weights and frozen.count_params() == 4 * 4 * 2 * 2


def test_initializer_rejects_non_square_kernels():
    with pytest.raises(ValueError, match="square"):
        BilinearInitializer()((4, 3, 2, 2))
    with pytest.raises(ValueError, match="filters"):
        BilinearInitializer()((4, 4, 3, 2))
