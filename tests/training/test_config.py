"""TrainConfig: precedence of defaults < model recipe < --config YAML < CLI, and validation."""

import pytest
import yaml

from kerascv_suite.pipelines.train_classifier import (
    TrainConfig,
    default_recipe,
    load_config,
    load_run_config,
)


def test_lenet5_gets_its_digits_recipe():
    config = load_config(None, model="lenet5")
    recipe = yaml.safe_load(default_recipe("lenet5", "digits").read_text())
    assert config.recipe == "lenet5_digits.yaml"
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
    config = load_config(None, model="no_such_recipe_model", data="somewhere")
    assert config.recipe is None
    assert config.epochs == TrainConfig.epochs


def test_resolved_config_round_trips_through_the_run_folder(tmp_path):
    config = load_config(None, model="lenet5", seed=3, freeze="2")
    (tmp_path / "config.yaml").write_text(config.to_yaml())
    again = load_run_config(tmp_path, epochs=40)
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
