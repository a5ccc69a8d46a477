import keras
import pytest

from kerascv_suite.models import build
from kerascv_suite.testing import run_model_test


@pytest.mark.backend
def test_imagenet_model():
    model = build("nin")
    # Hand count (the paper gives none): 34,944 + 2*9,312 + 614,656 + 2*65,792 + 885,120
    # + 2*147,840 + 3,539,968 + 1,049,600 + 1,025,000 = 7,595,176, as in nin.py.
    assert model.count_params() == 7_595_176
    # The authors' Caffe ImageNet model: 224 -> 54 (11x11/4) -> 27 -> 13 -> 6, then global
    # average pooling of 1000 maps.
    sizes = {"mlpconv1_conv": 54, "pool1": 27, "pool2": 13, "pool3": 6, "mlpconv4_cccp2": 6}
    for name, size in sizes.items():
        assert model.get_layer(name).output.shape[1:3] == (size, size), name
    assert model.get_layer("mlpconv4_cccp2").filters == 1000
    assert model.output.shape == (None, 1000)


@pytest.mark.backend
def test_cifar_model():
    model = build("nin_cifar")
    # Hand count: 14,592 + 30,880 + 15,456 + 460,992 + 2*37,056 + 331,968 + 37,056 + 1,930.
    assert model.count_params() == 966_986
    # Paper section 4.2 (three mlpconv layers, dropout after the first two) with the widths
    # of the authors' released cifar10 definition: 192-160-96, 192-192-192, 192-192-10
    # maps; 32 -> 16 -> 8 pixels.
    filters = [model.get_layer(f"mlpconv{b}_{part}").filters
               for b in (1, 2, 3) for part in ("conv", "cccp1", "cccp2")]  # fmt: skip
    assert filters == [192, 160, 96, 192, 192, 192, 192, 192, 10]
    assert model.get_layer("pool1").output.shape[1:3] == (16, 16)
    assert model.get_layer("pool2").output.shape[1:3] == (8, 8)


@pytest.mark.backend
@pytest.mark.parametrize("name", ["nin", "nin_cifar"])
def test_no_fully_connected_layers(name):
    model = build(name, input_shape=(59, 59, 3), num_classes=5)
    assert not any(isinstance(layer, keras.layers.Dense) for layer in model.layers)
    assert isinstance(model.get_layer("avg_pool"), keras.layers.GlobalAveragePooling2D)


# Variant-specific checks; every backend runs this model in test_registry.py.
@pytest.mark.parametrize("name, size", [("nin", 59), ("nin_cifar", 16)])
def test_model_contract(name, size):
    model = build(name, input_shape=(size, size, 3), num_classes=5)
    run_model_test(model, input_shape=(2, size, size, 3), expected_output_shape=(2, 5))


@pytest.mark.backend
def test_headless():
    model = build("nin_cifar", include_top=False, pooling="avg")
    assert model.output.shape == (None, 192)
    assert "mlpconv3_cccp2" not in [layer.name for layer in model.layers]


def test_rejects_unknown_config():
    with pytest.raises(ValueError, match="config"):
        build("nin", config="mnist")
