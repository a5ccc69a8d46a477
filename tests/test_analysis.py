"""Per-layer analysis: the worked numbers of the seed papers, computed by hand in comments."""

import keras
import pytest

from kerascv_suite.analysis import analyze_model, format_table


def _stack(num_convs, kernel=3, stride=1, input_shape=(32, 32, 3)):
    inputs = keras.Input(input_shape)
    x = inputs
    for i in range(num_convs):
        x = keras.layers.Conv2D(8, kernel, strides=stride, padding="same", name=f"conv{i + 1}")(x)
    return keras.Model(inputs, x)


@pytest.mark.backend
@pytest.mark.parametrize("num_convs, expected_rf", [(1, 3), (2, 5), (3, 7)])
def test_stacked_3x3_receptive_field(num_convs, expected_rf):
    # VGG paper (Simonyan & Zisserman 2014, sec. 2.3): two stacked 3x3 convolutions see 5x5,
    # three see 7x7 (r_n = 1 + 2n for stride 1).
    stats = analyze_model(_stack(num_convs))
    last = stats.layers[-1]
    assert last.receptive_field == (expected_rf, expected_rf)
    assert last.jump == (1, 1)


@pytest.mark.backend
def test_strided_and_pooled_receptive_field():
    # conv 7x7/2 -> maxpool 3x3/2 -> conv 3x3/1 (ResNet stem):
    # r = 7; r = 7 + (3-1)*2 = 11, j = 4; r = 11 + (3-1)*4 = 19, j = 4.
    inputs = keras.Input((64, 64, 3))
    x = keras.layers.Conv2D(4, 7, strides=2, padding="same")(inputs)
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same")(x)
    x = keras.layers.Conv2D(4, 3, padding="same")(x)
    rows = analyze_model(keras.Model(inputs, x)).layers
    assert [r.receptive_field for r in rows[1:]] == [(7, 7), (11, 11), (19, 19)]
    assert [r.jump for r in rows[1:]] == [(2, 2), (4, 4), (4, 4)]


@pytest.mark.backend
def test_inception_5x5_branch_cost():
    # GoogLeNet (Szegedy et al. 2015) inception 3a 5x5 branch on a 28x28x192 input:
    # direct 5x5 conv to 32 filters: 28*28*5*5*192*32 = 120,422,400 multiplications;
    # with a 16-filter 1x1 bottleneck: 28*28*192*16 + 28*28*5*5*16*32 = 12,443,648.
    inputs = keras.Input((28, 28, 192))
    direct = keras.layers.Conv2D(32, 5, padding="same", name="direct")(inputs)
    reduce = keras.layers.Conv2D(16, 1, name="reduce")(inputs)
    bottleneck = keras.layers.Conv2D(32, 5, padding="same", name="bottleneck")(reduce)
    stats = analyze_model(keras.Model(inputs, [direct, bottleneck]))
    macs = {r.name: r.macs for r in stats.layers}
    assert macs["direct"] == 120_422_400
    assert macs["reduce"] + macs["bottleneck"] == 12_443_648
    assert stats.macs == 120_422_400 + 12_443_648


@pytest.mark.backend
def test_dense_grouped_transpose_and_totals():
    inputs = keras.Input((8, 8, 4))
    g = keras.layers.Conv2D(6, 3, padding="same", groups=2, name="grouped")(inputs)
    t = keras.layers.Conv2DTranspose(2, 2, strides=2, name="up")(g)
    d = keras.layers.Dense(5, name="fc")(keras.layers.Flatten(name="flat")(t))
    model = keras.Model(inputs, d)
    stats = analyze_model(model)
    rows = {r.name: r for r in stats.layers}
    # grouped: 8*8 outputs * 3*3 kernel * (4/2) inputs per group * 6 filters = 6,912
    assert rows["grouped"].macs == 8 * 8 * 9 * 2 * 6
    # transposed: every one of 8*8 inputs scatters a 2x2 kernel: 8*8*2*2*6*2 = 3,072
    assert rows["up"].macs == 8 * 8 * 4 * 6 * 2
    assert rows["up"].jump == (0.5, 0.5)
    # dense: 16*16*2 = 512 inputs * 5 units
    assert rows["fc"].macs == 512 * 5
    # Flatten sees every position: rf 3 (grouped) + (2-1)*0.5 (up) = 3.5, then 3.5 + 15*0.5.
    assert rows["flat"].receptive_field == (11.0, 11.0)
    assert stats.params == model.count_params()
    text = format_table(stats)
    assert "Total MACs: 12,544" in text
