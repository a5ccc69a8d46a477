"""TrainConfig: precedence of defaults < model recipe < --config YAML < CLI, validation, and
which task's config a model gets."""

import pytest
import yaml

from kerascv_suite.tasks import (ClassifierConfig, DetectorConfig, KeypointConfig,
                                 SegmenterConfig, TrainConfig, load_config, load_run_config)
from kerascv_suite.tasks.config import default_recipe, recipe_path


def test_lenet5_gets_its_digits_recipe():
    config = load_config(None, model="lenet5")
    recipe = yaml.safe_load(recipe_path(default_recipe("lenet5", "digits")).read_text())
    assert config.recipe == "lenet5_digits" and config.model_name == "lenet5_digits"
    assert config.data == "digits"
    assert (config.epochs, config.lr, config.schedule) == (
        recipe["epochs"], recipe["lr"], recipe["schedule"])
    assert config.augment_options["hflip"] == 0.0


def test_yaml_beats_recipe_and_cli_beats_yaml(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("model: lenet5\nepochs: 7\nlr: 0.05\noptimizer: sgd\n")
    config = load_config(path, lr=0.2, epochs=None, batch_size=None)
    assert config.epochs == 7  # YAML over the recipe's 30
    assert config.optimizer == "sgd"  # YAML over the recipe's adam
    assert config.lr == 0.2  # CLI over YAML
    assert config.batch_size == 32  # recipe (None on the CLI means "not given")
    assert config.schedule == "warmup_cosine"  # recipe over the dataclass default


def test_no_recipe_uses_dataclass_defaults():
    config = load_config(None, model="resnet18", data="somewhere")
    assert config.recipe is None and config.model_name == "resnet18"
    assert config.epochs == TrainConfig.epochs


def test_recipe_none_trains_the_registered_model():
    config = load_config(None, model="ssd300", recipe="none")
    assert (config.recipe, config.model_name) == ("none", "ssd300")
    assert config.epochs == DetectorConfig.epochs and config.model_options == {}
    assert load_config(None, model="ssd300").model_name == "ssd300_shapes"


@pytest.mark.parametrize("model, config_class", [
    ("lenet5", ClassifierConfig), ("faster_rcnn", DetectorConfig), ("unet", SegmenterConfig),
    ("hourglass", KeypointConfig), ("ssd300_shapes", DetectorConfig)])
def test_the_model_decides_the_task(model, config_class):
    config = load_config(None, model=model)
    assert type(config) is config_class and config.task == config_class.task


def test_options_of_another_task_are_refused_by_name():
    with pytest.raises(ValueError, match="--loss apply to segmentation.*lenet5 is a "
                                         "classification model"):
        load_config(None, model="lenet5", loss="dice")
    with pytest.raises(ValueError, match="--score-threshold"):
        load_config(None, model="unet", score_threshold=0.5)


def test_unknown_recipe_is_named():
    with pytest.raises(ValueError, match="No recipe 'nope'.*ssd300_shapes"):
        load_config(None, model="ssd300", recipe="nope")


def test_resolved_config_round_trips_through_the_run_folder(tmp_path):
    config = load_config(None, model="unet", seed=3, freeze="2")
    (tmp_path / "config.yaml").write_text(config.to_yaml())
    again = load_run_config(tmp_path, epochs=40)
    assert type(again) is SegmenterConfig  # the saved task picks the config class
    assert again.seed == 3 and again.freeze == "2" and again.epochs == 40
    assert again.run_dir == str(tmp_path)
    assert {**config.to_dict(), "epochs": 40, "run_dir": str(tmp_path)} == again.to_dict()


def test_unknown_yaml_keys_are_named(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("epochz: 3\n")
    with pytest.raises(ValueError, match="epochz"):
        load_config(path)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"optimizer": "adagrad"}, "optimizer"),
        ({"schedule": "linear"}, "schedule"),
        ({"epochs": 0}, "epochs"),
        ({"lr": -1.0}, "lr"),
        ({"alias": "champion"}, "alias needs register"),
        ({"backend": "numpy"}, "backend"),
    ],
)
def test_bad_values_fail_with_the_value(overrides, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**overrides)


def test_phase_one_length():
    assert TrainConfig(epochs=10).phase1_epochs == 0
    assert TrainConfig(epochs=10, freeze="backbone").phase1_epochs == 5
    assert TrainConfig(epochs=10, freeze="3", head_epochs=2).phase1_epochs == 2
