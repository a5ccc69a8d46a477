import keras
import numpy as np
import pytest

from kerascv_suite.layers import (
    InceptionModule,
    InceptionV2ModuleA,
    InceptionV2ModuleB,
    InceptionV2ModuleC,
    InceptionV2Reduction,
)
from kerascv_suite.layers.inception_module import (
    apply_block,
    inception_v1_branches,
    make_block_layers,
)
from kerascv_suite.testing.test_case import run_layer_test


@pytest.mark.backend
def test_inception_module():
    # Inception (3a) of Szegedy et al. 2015, Table 1 (on a 6x6 grid instead of 28x28):
    # 64 + 128 + 32 + 32 = 256 output channels; 6 convolutions, each a kernel and a bias.
    layer = run_layer_test(
        InceptionModule,
        dict(
            filters_1x1=64,
            filters_3x3_reduce=96,
            filters_3x3=128,
            filters_5x5_reduce=16,
            filters_5x5=32,
            filters_pool_proj=32,
        ),
        input_shape=(2, 6, 6, 192),
        expected_output_shape=(2, 6, 6, 256),
        expected_num_trainable_weights=12,
        expected_num_non_trainable_weights=0,
    )
    # Table 1's params column for 3a: 159K (K = 1024 weights): the hand calculation from its
    # filter columns is 192*64 + 192*96 + 9*96*128 + 192*16 + 25*16*32 + 192*32 = 163,328
    # (159.5K), plus 368 biases.
    assert layer.count_params() == 163_328 + 368


@pytest.mark.backend
def test_inception_module_matches_flat_builder_block():
    """The Layer and the flat builder graph share the block code, so they compute the same."""
    x = np.random.default_rng(0).uniform(size=(1, 5, 5, 8)).astype("float32")
    layer = InceptionModule(4, 3, 5, 2, 3, 2, name="blk")
    expected = keras.ops.convert_to_numpy(layer(x))
    branches = inception_v1_branches(4, 3, 5, 2, 3, 2)
    inputs = keras.Input((5, 5, 8))
    block = make_block_layers("blk", branches, "relu")
    flat = keras.Model(inputs, apply_block(block, branches, inputs))
    assert [lay.name for lay in flat.layers][-1] == "blk_output"
    for name, sub in layer.block_layers.items():
        block[name].set_weights(sub.get_weights())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(flat(x)), expected, atol=1e-5)


@pytest.mark.backend
def test_inception_v2_module_a():
    # Figure 5 of Szegedy et al. 2016: 1x1 + 3x3 + double 3x3 + pool projection.
    # Channels: 8 + 12 + 10 + 6 = 36. 7 conv/BN pairs: kernel + BN beta trainable, BN mean and
    # variance not (BN scale is off: a ReLU follows).
    run_layer_test(
        InceptionV2ModuleA,
        dict(
            filters_1x1=8,
            filters_3x3_reduce=6,
            filters_3x3=12,
            filters_3x3dbl_reduce=4,
            filters_3x3dbl=10,
            filters_pool_proj=6,
        ),
        input_shape=(2, 7, 7, 16),
        expected_output_shape=(2, 7, 7, 36),
        expected_num_trainable_weights=14,
        expected_num_non_trainable_weights=14,
    )


@pytest.mark.backend
def test_inception_v2_module_b():
    # Figure 6 with n=3: 8 + 12 + 10 + 6 = 36 channels; 10 convolutions.
    layer = run_layer_test(
        InceptionV2ModuleB,
        dict(
            filters_1x1=8,
            filters_nxn_reduce=6,
            filters_nxn=12,
            filters_nxn_dbl_reduce=4,
            filters_nxn_dbl=10,
            filters_pool_proj=6,
            n=3,
        ),
        input_shape=(2, 7, 7, 16),
        expected_output_shape=(2, 7, 7, 36),
        expected_num_trainable_weights=20,
        expected_num_non_trainable_weights=20,
    )
    kernels = [w.shape for w in layer.trainable_weights if len(w.shape) == 4]
    assert (1, 3, 6, 6) in kernels and (3, 1, 6, 12) in kernels


@pytest.mark.backend
def test_inception_v2_module_c():
    # Figure 7: 8 + 2*12 + 2*10 + 6 = 58 channels (each split concatenates 1x3 and 3x1).
    run_layer_test(
        InceptionV2ModuleC,
        dict(
            filters_1x1=8,
            filters_3x3_reduce=6,
            filters_3x3=12,
            filters_3x3dbl_reduce=4,
            filters_3x3dbl=10,
            filters_pool_proj=6,
        ),
        input_shape=(2, 4, 4, 16),
        expected_output_shape=(2, 4, 4, 58),
        expected_num_trainable_weights=18,
        expected_num_non_trainable_weights=18,
    )


@pytest.mark.backend
@pytest.mark.parametrize("reduce, convs", [(0, 4), (6, 5)])
def test_inception_v2_reduction(reduce, convs):
    # Figure 10: (9 - 3) // 2 + 1 = 4; channels 12 + 10 + 16 (the pooled input).
    run_layer_test(
        InceptionV2Reduction,
        dict(filters_3x3_reduce=reduce, filters_3x3=12, filters_3x3dbl_reduce=4, filters_3x3dbl=10),
        input_shape=(2, 9, 9, 16),
        expected_output_shape=(2, 4, 4, 38),
        expected_num_trainable_weights=2 * convs,
        expected_num_non_trainable_weights=2 * convs,
    )


def test_unknown_conv_style():
    with pytest.raises(ValueError, match="style"):
        make_block_layers("x", inception_v1_branches(1, 1, 1, 1, 1, 1), "gelu")
