import keras
import numpy as np
import pytest

from kerascv_suite import models
from kerascv_suite.models import ensemble
from kerascv_suite.testing import run_model_test

SMALL = {"input_shape": (32, 32, 3), "num_classes": 5}


@pytest.mark.backend
def test_ensemble_averages_members_and_round_trips():
    # Two architectures (SqueezeNet 1.0 and 1.1 differ in stem and pooling positions), the
    # two smallest at this input: the ensemble is what is tested, not its members.
    a = models.build("squeezenet1_1", **SMALL)
    b = models.build("squeezenet1_0", **SMALL)
    model = ensemble([a, b], name="pair")
    x = np.random.default_rng(0).uniform(0, 255, size=(2, 32, 32, 3)).astype("float32")
    expected = (a.predict(x, verbose=0) + b.predict(x, verbose=0)) / 2
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.predict(x, verbose=0).sum(axis=-1), 1.0, rtol=1e-5)
    restored = run_model_test(model, (2, 32, 32, 3), expected_output_shape=(2, 5))
    assert restored.name == "pair"


@pytest.mark.backend
def test_registry_names_with_shared_overrides():
    model = ensemble(["squeezenet1_1", "squeezenet1_1"], **SMALL)
    assert [l.name for l in model.layers[1:3]] == ["squeezenet1_1_0", "squeezenet1_1_1"]
    assert tuple(model.output.shape) == (None, 5)


def test_rejects_incompatible_members():
    small = models.build("squeezenet1_1", **SMALL)
    with pytest.raises(ValueError, match="num_classes"):
        ensemble([small, models.build("squeezenet1_0", input_shape=(32, 32, 3), num_classes=6)])
    with pytest.raises(ValueError, match="input shape"):
        ensemble([small, models.build("squeezenet1_0", input_shape=(48, 48, 3), num_classes=5)])
    with pytest.raises(ValueError, match="softmax"):
        ensemble([small, models.build("squeezenet1_0", classifier_activation=None, **SMALL)])
    with pytest.raises(ValueError, match="at least two"):
        ensemble([small])
    with pytest.raises(ValueError, match="keras.Model or a registry name"):
        ensemble([small, 3])


def test_two_loads_of_one_file(tmp_path):
    # Reloaded .keras models share their name and return a one-element list when called.
    path = tmp_path / "member.keras"
    models.build("squeezenet1_1", **SMALL).save(path)
    first, second = (keras.saving.load_model(path) for _ in range(2))
    averaged = ensemble([first, second])
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(averaged(x)),
        keras.ops.convert_to_numpy(keras.tree.flatten(first(x))[0]),
        atol=1e-6,
    )
