"""Every training recipe's model, registered as a variant under the recipe's name.

A recipe (`kerascv_suite/recipes/<name>.yaml`) trains a CPU-sized variant of a paper model:
its `model` (the paper variant), `image_size`, `width` and `model_options` are the variant's
builder arguments. Registering them here makes `build("ssd300_shapes")` exactly the model
`kcv train --model ssd300` trains on the shapes set, and `kcv models` lists it. The
recipe's other keys (epochs, optimizer, augmentation...) are training settings, read by
`kerascv_suite.tasks.config`.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from kerascv_suite.models.registry import get_spec, register_model

RECIPES_DIR = Path(__file__).resolve().parent.parent / "recipes"


def variant_arguments(recipe: dict, base) -> dict:
    """The builder arguments of a recipe's variant: the base variant's defaults, then the
    recipe's `model_options`, `width` and `image_size` (a square input with the base's
    channels)."""
    arguments = {**base.defaults, **(recipe.get("model_options") or {})}
    if recipe.get("width") is not None:
        arguments["width"] = recipe["width"]
    if recipe.get("image_size"):
        channels = base.input_shape[2] if len(base.input_shape) == 3 else 3
        arguments["input_shape"] = (int(recipe["image_size"]),) * 2 + (channels,)
    return arguments


def register_recipe_variants(folder=RECIPES_DIR):
    """Registers `<recipe name>` for every recipe in `folder` whose name is not already a
    registered paper variant (a recipe named after its model only sets training options)."""
    for path in sorted(Path(folder).glob("*.yaml")):
        recipe = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if path.stem == recipe.get("model"):
            continue
        base = get_spec(recipe["model"])
        # CPU-sized already: smoke-tested at its own input size.
        register_model(path.stem, base.builder, task=base.task,
                       paper=f"{base.paper} CPU recipe variant: {path.name}.",
                       num_params=recipe.get("num_params"), **variant_arguments(recipe, base))


register_recipe_variants()
