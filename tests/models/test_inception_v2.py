import os

import keras
import numpy as np
import pytest

from kerascv_suite.models.classification.inception_v2 import inception
from kerascv_suite.models.registry import build, get_spec

# Table 1 of Szegedy et al. 2016, "input size" column: the input of each row, i.e. the output
# of the row before it, at 299x299x3.
TABLE1_SHAPES = {
    "stem_1_relu": (149, 149, 32),
    "stem_2_relu": (147, 147, 32),
    "stem_3_relu": (147, 147, 64),
    "stem_pool1": (73, 73, 64),
    "stem_4_relu": (71, 71, 80),
    "stem_5_relu": (35, 35, 192),
    "stem_6_relu": (35, 35, 288),  # input of the 3 x Figure-5 modules
    "mixed2": (35, 35, 288),  # section 6: "3 traditional inception modules ... 288 filters"
    "mixed3": (17, 17, 768),  # input of the 5 x Figure-6 modules
    "mixed8": (17, 17, 768),
    "mixed9": (8, 8, 1280),  # input of the 2 x Figure-7 modules
    "mixed11": (8, 8, 2048),  # input of the 8x8 pooling
    "avg_pool": (2048,),  # input of the linear layer (1x1x2048)
    "predictions": (1000,),
}


def _conv(kernel, c_in, c_out):
    """Conv without bias + BN without scale: kernel, then beta, moving mean, moving var."""
    return kernel * c_in * c_out + 3 * c_out


def _v2_params():
    """Hand count of Inception v2: Table 1's stem widths and our documented branch widths."""
    stem_widths = [(3, 32), (32, 32), (32, 64), (64, 80), (80, 192), (192, 288)]
    stem = sum(_conv(9, c_in, c_out) for c_in, c_out in stem_widths)
    module_a = sum([
        _conv(1, 288, 64),  # 1x1
        _conv(1, 288, 48), _conv(9, 48, 64),  # 1x1 -> 3x3
        _conv(1, 288, 64), _conv(9, 64, 96), _conv(9, 96, 96),  # 1x1 -> 3x3 -> 3x3
        _conv(1, 288, 64),  # pool projection
    ])
    reduction_35 = sum([_conv(9, 288, 384), _conv(1, 288, 64), _conv(9, 64, 96), _conv(9, 96, 96)])

    def module_b(r):
        return sum([
            _conv(1, 768, 192),
            _conv(1, 768, r), _conv(7, r, r), _conv(7, r, 192),
            _conv(1, 768, r), 3 * _conv(7, r, r), _conv(7, r, 192),
            _conv(1, 768, 192),
        ])

    reduction_17 = sum([
        _conv(1, 768, 192), _conv(9, 192, 320),
        _conv(1, 768, 192), _conv(9, 192, 192), _conv(9, 192, 192),
    ])

    def module_c(c_in):
        return sum([
            _conv(1, c_in, 320),
            _conv(1, c_in, 384), 2 * _conv(3, 384, 384),
            _conv(1, c_in, 448), _conv(9, 448, 384), 2 * _conv(3, 384, 384),
            _conv(1, c_in, 192),
        ])

    modules_b = sum(module_b(r) for r in (128, 160, 160, 160, 192))
    classifier = 2048 * 1000 + 1000
    return (
        stem + 3 * module_a + reduction_35 + modules_b + reduction_17
        + module_c(1280) + module_c(2048) + classifier
    )


def test_inception_v2_table1_shapes_and_params():
    model = inception("v2")
    for name, shape in TABLE1_SHAPES.items():
        assert tuple(model.get_layer(name).output.shape[1:]) == shape, name
    assert model.count_params() == _v2_params() == get_spec("inception_v2").num_params


def test_inception_v2_factorized_kernels():
    """Figures 5, 6 and 7: no convolution wider than 3x3 or 1x7/7x1 after the stem."""
    model = inception("v2")
    kernels = {
        layer.name: tuple(layer.kernel_size)
        for layer in model.layers
        if isinstance(layer, keras.layers.Conv2D)
    }
    assert kernels["mixed0_3x3dbl_1_conv"] == kernels["mixed0_3x3dbl_2_conv"] == (3, 3)
    assert kernels["mixed4_nxn_1_conv"] == (1, 7) and kernels["mixed4_nxn_2_conv"] == (7, 1)
    assert kernels["mixed10_3x3_1x3_conv"] == (1, 3)
    assert kernels["mixed10_3x3_3x1_conv"] == (3, 1)
    assert max(h * w for h, w in kernels.values()) == 9
    # Every convolution is batch-normalized (Table 3, "BN-auxiliary") and has no bias.
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert {conv.name.removesuffix("_conv") + "_bn" for conv in convs} == {bn.name for bn in bns}
    assert not any(conv.use_bias for conv in convs)


# Build / predict / train / .keras round trip at the registered `test_overrides` (75x75, the
# smallest input, as for keras.applications.InceptionV3) run in tests/models/test_registry.py.


@pytest.mark.backend
@pytest.mark.parametrize("name", ["inception_v2", "inception_v3"])
def test_small_output_shapes(name):
    model = build(name, input_shape=(75, 75, 3), num_classes=5)
    assert tuple(model.output.shape) == (None, 5)
    assert tuple(model.get_layer("mixed2").output.shape[1:3]) == (7, 7)


@pytest.mark.backend
def test_headless():
    model = inception("v2", include_top=False, pooling="max", input_shape=(75, 75, 3))
    assert tuple(model.output.shape) == (None, 2048)
    with pytest.raises(ValueError, match="version"):
        inception("v4")


def _perturbed_reference(input_shape):
    """keras.applications.InceptionV3 with random, non-trivial weights and BN statistics."""
    ref = keras.applications.InceptionV3(
        weights=None, input_shape=input_shape, classifier_activation=None
    )
    rng = np.random.default_rng(0)
    values = []
    for variable in ref.weights:
        value = keras.ops.convert_to_numpy(variable)
        noise = rng.normal(0.0, 0.05, value.shape).astype("float32")
        values.append(np.abs(value + noise) + 0.5 if "variance" in variable.path else value + noise)
    ref.set_weights(values)
    return ref


def test_inception_v3_matches_keras_applications(tmp_path):
    # keras.applications.InceptionV3(weights=None).count_params() is 23,851,784.
    assert inception("v3").count_params() == 23_851_784
    input_shape = (107, 107, 3)
    ref = _perturbed_reference(input_shape)
    images = np.random.default_rng(1).uniform(0, 255, (2, *input_shape)).astype("float32")
    preprocessed = keras.applications.inception_v3.preprocess_input(images.copy())
    expected = ref.predict(preprocessed, verbose=0)

    # The keras.applications ImageNet file is a legacy HDF5 weights file read by layer order.
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    legacy = os.path.join(tmp_path, "inception_v3_legacy.h5")
    with h5py.File(legacy, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, ref)
    native = os.path.join(tmp_path, "inception_v3.weights.h5")
    ref.save_weights(native)

    for path in (legacy, native):
        ours = inception("v3", input_shape=input_shape, weights=path, classifier_activation=None)
        actual = ours.predict(images, verbose=0)
        np.testing.assert_allclose(actual, expected, atol=1e-4, rtol=1e-4)
        assert np.std(expected) > 1e-2  # the comparison is not between near-constant outputs
