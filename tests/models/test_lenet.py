import keras
import numpy as np
import pytest
from keras.ops import convert_to_numpy as to_numpy

from kerascv_suite.layers import scaled_tanh
from kerascv_suite.models import build
from kerascv_suite.models.classification.lenet import LECUN_C3_TABLE
from kerascv_suite.testing import run_model_test

# LeCun et al. 1998, section II-B: trainable parameters per layer of LeNet-5.
PAPER_PARAMS = {"c1": 156, "s2": 12, "c3": 1_516, "s4": 32, "c5": 48_120, "f6": 10_164}
# The same section: map sizes 28x28 (C1), 14x14 (S2), 10x10 (C3), 5x5 (S4), 1x1 (C5).
PAPER_SIZES = {"c1": 28, "s2": 14, "c3": 10, "s4": 5, "c5": 1}


@pytest.mark.backend
def test_classic_matches_paper_layer_by_layer():
    model = build("lenet5_classic")
    params = {name: model.get_layer(name).count_params() for name in PAPER_PARAMS}
    assert params == PAPER_PARAMS
    # "60,000 trainable free parameters" (section II-B).
    assert sum(params.values()) == 60_000
    for name, size in PAPER_SIZES.items():
        assert model.get_layer(name).output.shape[1:3] == (size, size)
    # The paper's RBF output layer becomes a softmax layer: 10 * (84 + 1) = 850.
    assert model.get_layer("predictions").count_params() == 850
    assert model.count_params() == 60_850


@pytest.mark.backend
def test_modern_form():
    model = build("lenet5")
    assert isinstance(model.get_layer("s2"), keras.layers.MaxPooling2D)
    # Full C3: 16 * (5 * 5 * 6 + 1) = 2,416 (hand count); C1, C5, F6 as in the paper.
    assert model.get_layer("c3").count_params() == 2_416
    for name in ("c1", "c5", "f6"):
        assert model.get_layer(name).count_params() == PAPER_PARAMS[name]
    for name, size in PAPER_SIZES.items():
        assert model.get_layer(name).output.shape[1:3] == (size, size)


def test_c3_table_is_the_papers_table_one():
    # Table I: maps 0-5 see 3 contiguous S2 maps, 6-11 four contiguous, 12-14 four
    # discontinuous, 15 all six; row 0 of the table has X in columns 0,4,5,6,9,10,11,12,14,15.
    sizes = [len(row) for row in LECUN_C3_TABLE]
    assert sizes == [3] * 6 + [4] * 9 + [6]
    assert [j for j, row in enumerate(LECUN_C3_TABLE) if 0 in row] == [
        0, 4, 5, 6, 9, 10, 11, 12, 14, 15
    ]  # fmt: skip
    # 60 connections of 25 weights plus 16 biases = 1,516 (section II-B).
    assert sum(sizes) * 25 + 16 == 1_516


@pytest.mark.backend
def test_scaled_tanh():
    # Appendix A: f(a) = 1.7159 tanh(2a/3), chosen so that f(1) = 1 and f(-1) = -1.
    values = to_numpy(scaled_tanh(keras.ops.convert_to_tensor([-1.0, 0.0, 1.0])))
    np.testing.assert_allclose(values, [-1.0, 0.0, 1.0], atol=1e-4)


# Variant-specific checks; every backend runs this model in test_registry.py.
@pytest.mark.parametrize("name", ["lenet5", "lenet5_classic"])
def test_model_contract(name):
    model = build(name, num_classes=5)
    run_model_test(model, input_shape=(2, 32, 32, 1), expected_output_shape=(2, 5))


@pytest.mark.backend
def test_headless():
    model = build("lenet5_classic", include_top=False, pooling="avg")
    assert model.output.shape == (None, 120)
    assert "f6" not in [layer.name for layer in model.layers]


def test_rejects_unknown_options():
    with pytest.raises(ValueError, match="subsampling"):
        build("lenet5", subsampling="median")
    with pytest.raises(ValueError, match="c3_table"):
        build("lenet5", c3_table="random")
