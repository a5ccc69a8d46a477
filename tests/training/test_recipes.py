"""Every kept recipe resolves through its task's config (valid keys and values) and is a
registered model variant: exactly the model the recipe trains."""

import pytest
import yaml

from kerascv_suite import models
from kerascv_suite.tasks import load_config
from kerascv_suite.tasks.config import RECIPES_DIR

RECIPES = sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))


def test_every_task_with_a_quality_target_has_its_recipes():
    # Issues 4 and 5: recipes for each detector and segmenter on the shapes set.
    expected = {"faster_rcnn_shapes", "fast_rcnn_shapes", "rcnn_shapes", "ssd300_shapes",
                "yolo_v1_shapes", "unet_shapes", "fcn8s_shapes", "segnet_shapes",
                "deconvnet_shapes", "hourglass_shapes", "lenet5_digits"}
    assert expected <= set(RECIPES)


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_resolves_for_its_model_and_is_a_registered_variant(name):
    recipe = yaml.safe_load((RECIPES_DIR / f"{name}.yaml").read_text())
    config = load_config(None, model=recipe["model"], data=recipe["data"])
    assert config.recipe == name and config.model_name == name
    assert config.task == models.get_spec(recipe["model"]).task
    assert (config.epochs, config.lr) == (recipe["epochs"], recipe["lr"])
    spec = models.get_spec(name)
    assert spec.task == config.task and spec.builder is models.get_spec(recipe["model"]).builder
    for key, value in (recipe.get("model_options") or {}).items():
        assert spec.defaults[key] == value
    if recipe.get("image_size"):
        assert spec.input_shape[:2] == (recipe["image_size"],) * 2
    assert recipe["target"]["metric"].startswith("test_") and recipe["target"]["value"] > 0
    # Naming the variant itself resolves to the same recipe.
    assert load_config(None, model=name).recipe == name


@pytest.mark.parametrize("name", ["lenet5_digits", "unet_shapes", "ssd300_shapes",
                                  "faster_rcnn_shapes", "hourglass_shapes"])
def test_build_of_the_recipe_name_is_the_model_its_task_trains(name, tmp_path):
    from kerascv_suite.tasks import get_task

    recipe = yaml.safe_load((RECIPES_DIR / f"{name}.yaml").read_text())
    small = {"shapes_count": 10} if recipe["data"] == "shapes" else {}
    config = load_config(None, model=recipe["model"], workers=0, **small)
    task = get_task(config.task)
    data = task.load_data(config, tmp_path, lambda *_: None)
    try:
        trained, _ = task.build_model(config, data, lambda *_: None)
    finally:
        data.close()
    assert trained.get_config() == models.build(name).get_config()
    assert trained.count_params() == models.build(name).count_params()
