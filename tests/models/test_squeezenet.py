import keras
import numpy as np
import pytest

from kerascv_suite import models
from kerascv_suite.models.classification.squeezenet import _max_pool_ceil


@pytest.mark.backend
@pytest.mark.parametrize(
    # torchvision.models.squeezenet1_0 / squeezenet1_1: sum(p.numel() for p in parameters());
    # no BN and biases everywhere, so Keras counting is the same.
    "name, expected", [("squeezenet1_0", 1_248_424), ("squeezenet1_1", 1_235_496)]
)
def test_parameter_counts_match_torchvision(name, expected):
    model = models.build(name)
    assert model.count_params() == expected
    # torchvision's feature extractor ends at 13x13x512 for a 224x224 input.
    assert tuple(model.get_layer("fire9_concat").output.shape) == (None, 13, 13, 512)


def _ceil_max_pool_reference(x):
    """3x3/2 max pooling with ceil rounding (torch.nn.MaxPool2d(3, 2, ceil_mode=True))."""
    h, w = x.shape[1:3]
    oh, ow = -(-(h - 3) // 2) + 1, -(-(w - 3) // 2) + 1
    out = np.empty((x.shape[0], oh, ow, x.shape[3]), x.dtype)
    for i in range(oh):
        for j in range(ow):
            out[:, i, j] = x[:, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3].max(axis=(1, 2))
    return out


@pytest.mark.backend
@pytest.mark.parametrize("size", [(7, 8), (6, 9)])
def test_ceil_mode_pooling(size):
    x = np.random.default_rng(0).uniform(size=(1, *size, 2)).astype("float32")
    inputs = keras.Input((*size, 2))
    model = keras.Model(inputs, _max_pool_ceil(inputs, "pool"))
    np.testing.assert_allclose(model.predict(x, verbose=0), _ceil_max_pool_reference(x))


@pytest.mark.backend
def test_headless_and_logits():
    model = models.build(
        "squeezenet1_1", include_top=False, pooling="avg", input_shape=(32, 32, 3)
    )
    assert tuple(model.output.shape) == (None, 512)
    model = models.build(
        "squeezenet1_0", classifier_activation=None, num_classes=7, input_shape=(32, 32, 3)
    )
    assert model.layers[-1].name == "avg_pool" and tuple(model.output.shape) == (None, 7)
    with pytest.raises(ValueError, match="version"):
        models.build("squeezenet1_0", version="2_0")
