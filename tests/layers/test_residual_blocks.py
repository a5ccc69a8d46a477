import keras
import numpy as np
import pytest

from kerascv_suite.layers import BasicBlock, BottleneckBlock
from kerascv_suite.layers.residual_blocks import apply_residual_block, residual_block_layers
from kerascv_suite.testing import run_layer_test


@pytest.mark.backend
@pytest.mark.parametrize(
    "cls, kwargs, out_shape",
    [
        (BasicBlock, {"filters": 8, "stride": 2}, (2, 4, 4, 8)),
        (BasicBlock, {"filters": 4}, (2, 7, 7, 4)),
        (BottleneckBlock, {"filters": 2, "stride": 2, "se_ratio": 4}, (2, 4, 4, 8)),
    ],
)
def test_layer_contract(cls, kwargs, out_shape):
    run_layer_test(cls, kwargs, input_shape=(2, 7, 7, 4), expected_output_shape=out_shape)


@pytest.mark.backend
def test_layer_equals_flat_block():
    x = np.random.default_rng(0).uniform(size=(2, 6, 6, 4)).astype("float32")
    layer = BottleneckBlock(filters=2, stride=2, se_ratio=2, name="conv3_block1")
    expected = keras.ops.convert_to_numpy(layer(x, training=False))
    inputs = keras.Input((6, 6, 4))
    flat = residual_block_layers("bottleneck", 2, 4, stride=2, se_ratio=2, name="conv3_block1")
    model = keras.Model(inputs, apply_residual_block(flat, inputs))
    assert set(flat) == set(layer.block)
    for key, sub in layer.block.items():
        flat[key].set_weights(sub.get_weights())
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-5)


def test_projection_shortcut_only_where_shape_changes():
    # He et al. 2016, option B: identity shortcuts unless the shape changes.
    assert "0_conv" not in residual_block_layers("basic", 64, 64)
    assert "0_conv" in residual_block_layers("basic", 128, 64, stride=2)
    assert "0_conv" in residual_block_layers("bottleneck", 64, 64)  # 64 -> 256 channels
    assert "0_conv" not in residual_block_layers("bottleneck", 64, 256)
    with pytest.raises(ValueError, match="kind"):
        residual_block_layers("wide", 64, 64)


def test_bottleneck_matches_keras_applications_block():
    # keras.applications ResNet50's conv2_block1 (64 -> 256 channels, projection shortcut).
    reference = keras.applications.ResNet50(
        weights=None, include_top=False, input_shape=(32, 32, 3)
    )
    expected = {
        layer.name: layer.count_params()
        for layer in reference.layers
        if layer.name.startswith("conv2_block1_")
    }
    block = BottleneckBlock(filters=64, name="conv2_block1")
    block.build((None, 8, 8, 64))
    ours = {layer.name: layer.count_params() for layer in block.block.values()}
    assert ours == expected


def test_basic_block_parameter_count():
    block = BasicBlock(filters=128, stride=2, use_bias=False)
    block.build((None, 56, 56, 64))
    # torchvision resnet18 layer2[0]: conv 3x3 64->128 (73,728) + bn (256) + conv 3x3
    # 128->128 (147,456) + bn (256) + downsample conv 1x1 64->128 (8,192) + bn (256) = 230,144
    # trainable; Keras also counts the 3 BNs' moving mean/variance (3 * 256).
    assert block.count_params() == 230_144 + 3 * 256
