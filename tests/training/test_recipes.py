"""Every kept recipe resolves through its task's pipeline (valid keys and values), so a
recipe the README points to cannot silently rot."""

import pytest
import yaml

from kerascv_suite import models
from kerascv_suite.pipelines import (train_classifier, train_detector, train_keypoints,
                                     train_segmenter)
from kerascv_suite.pipelines.train_classifier import RECIPES_DIR

PIPELINES = {"classification": train_classifier, "detection": train_detector,
             "segmentation": train_segmenter, "keypoints": train_keypoints}
RECIPES = sorted(p.name for p in RECIPES_DIR.glob("*.yaml"))


def test_every_task_with_a_quality_target_has_its_recipes():
    # Issues 4 and 5: recipes for each detector and segmenter on the shapes set.
    expected = {"faster_rcnn_shapes.yaml", "fast_rcnn_shapes.yaml", "rcnn_shapes.yaml",
                "ssd300_shapes.yaml", "yolo_v1_shapes.yaml", "unet_shapes.yaml",
                "fcn8s_shapes.yaml", "segnet_shapes.yaml", "deconvnet_shapes.yaml",
                "hourglass_shapes.yaml", "lenet5_digits.yaml"}
    assert expected <= set(RECIPES)


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_resolves_for_its_model(name):
    recipe = yaml.safe_load((RECIPES_DIR / name).read_text())
    task = models.get_spec(recipe["model"]).task
    config = PIPELINES[task].load_config(None, model=recipe["model"], data=recipe["data"])
    assert config.recipe == name
    assert (config.epochs, config.lr) == (recipe["epochs"], recipe["lr"])
    if "model_options" in recipe:
        assert config.model_options == recipe["model_options"]
