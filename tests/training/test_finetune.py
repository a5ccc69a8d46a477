"""Fine-tuning: a new head on pretrained layers, freeze specs, two-phase schedule."""

import keras
import numpy as np
import pytest

from kerascv_suite.models import build
from kerascv_suite.models.metadata import with_metadata
from kerascv_suite.training.finetune import (
    apply_freeze,
    build_finetune_model,
    freeze_layer_names,
    unfreeze_all,
)


@pytest.fixture
def lenet_source(tmp_path):
    model = build("lenet5", num_classes=10)
    path = tmp_path / "digits.keras"
    model.save(path)
    return model, path


def _trainable_params(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def test_new_head_for_five_classes_keeps_the_backbone(lenet_source):
    source, path = lenet_source
    model, transferred = build_finetune_model("lenet5", str(path), 5, (32, 32, 1))
    # Every weighted LeNet-5 layer but the 10-way output fits the 5-class model.
    assert transferred == ["c1", "c3", "c5", "f6"]
    for name in transferred:
        for new, old in zip(model.get_layer(name).get_weights(),
                            source.get_layer(name).get_weights()):
            np.testing.assert_array_equal(new, old)
    assert model.output_shape == (None, 5)


def test_freeze_specs_count_layers(lenet_source):
    _, path = lenet_source
    model, transferred = build_finetune_model("lenet5", str(path), 5, (32, 32, 1))
    # Layers after the input: preprocessing c1 s2 c3 s4 c5 flatten f6 predictions.
    assert freeze_layer_names(model, "3") == ["preprocessing", "c1", "s2"]
    assert freeze_layer_names(model, "until:c5") == [
        "preprocessing", "c1", "s2", "c3", "s4", "c5"]
    frozen = apply_freeze(model, "backbone", transferred)
    assert frozen == ["c1", "c3", "c5", "f6"]
    # Only the new output layer trains: 84 * 5 weights + 5 biases = 425.
    assert _trainable_params(model) == 425
    unfreeze_all(model)
    # lenet5 has 61,706 parameters at 10 classes (registry); 5 classes drop 84 * 5 + 5 = 425.
    assert _trainable_params(model) == 61_706 - 425


@pytest.mark.parametrize("spec, message", [
    ("until:nope", "nope"), ("99", "has 9 layers"), ("head", "backbone"),
])
def test_bad_freeze_specs_name_the_problem(spec, message):
    model = build("lenet5", num_classes=5)
    with pytest.raises(ValueError, match=message):
        freeze_layer_names(model, spec)


def test_backbone_without_weights_is_refused():
    with pytest.raises(ValueError, match="needs pretrained --weights"):
        freeze_layer_names(build("lenet5", num_classes=5), "backbone")


def test_unrelated_weights_are_refused(tmp_path):
    inputs = keras.Input((8,))
    other = keras.Model(inputs, keras.layers.Dense(3, name="something")(inputs))
    path = tmp_path / "other.keras"
    other.save(path)
    with pytest.raises(ValueError, match="No layer"):
        build_finetune_model("lenet5", str(path), 5, (32, 32, 1))


def test_a_head_of_the_same_shape_is_new_unless_the_classes_are_the_same(tmp_path):
    # Digits 0-4 -> digits 5-9: five classes each, so the output layer's shapes fit, but
    # its weights belong to other classes; with the source's own classes it is kept.
    source = build("lenet5", num_classes=5)
    source = with_metadata(source, class_names=["0", "1", "2", "3", "4"])
    path = tmp_path / "digits_0_4.keras"
    source.save(path)
    _, transferred = build_finetune_model("lenet5", str(path), 5, (32, 32, 1),
                                          class_names=["5", "6", "7", "8", "9"])
    assert transferred == ["c1", "c3", "c5", "f6"]
    _, transferred = build_finetune_model("lenet5", str(path), 5, (32, 32, 1),
                                          class_names=["0", "1", "2", "3", "4"])
    assert transferred == ["c1", "c3", "c5", "f6", "predictions"]
