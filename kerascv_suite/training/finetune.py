"""Transfer learning: new head on pretrained weights, freezing specs, unfreezing.

Example:
    >>> model, transferred = build_finetune_model("resnet50", "models:/cats@champion",
    ...                                           num_classes=5, input_shape=(96, 96, 3))
    >>> frozen = apply_freeze(model, "backbone", transferred)
"""

from __future__ import annotations

import os


def _load_source(weights, name, input_shape):
    """The pretrained model to copy from: a saved model, a catalog entry (`imagenet` or an
    entry name, downloaded and converted once) or a headless build of `name`."""
    from kerascv_suite.models.registry import build
    from kerascv_suite.models.resolve import get_model
    from kerascv_suite.models.weights import is_mlflow_uri
    from kerascv_suite.weights import is_catalog_weights

    if is_mlflow_uri(weights) or str(weights).endswith(".keras"):
        return get_model(weights)
    if is_catalog_weights(weights):
        return build(name, weights=weights)
    if not os.path.isfile(weights):
        raise FileNotFoundError(
            "--weights must be a .keras file, a weights file or an MLflow model URI. "
            f"Received: weights={weights!r}"
        )
    # A weights-only file carries no class count; keras.applications' "notop" files load
    # into the headless builder, which is exactly the backbone we need.
    try:
        return build(name, include_top=False, input_shape=input_shape, weights=weights)
    except ValueError as e:
        raise ValueError(
            f"Could not load {weights!r} into a headless {name!r}: {e}. Pass a .keras file or "
            f"an MLflow model URI to fine-tune from a model with its head. "
            f"Received: weights={weights!r}"
        ) from e


def head_layers(name, model, num_classes, input_shape, **overrides) -> set[str]:
    """Names of the layers of `model` (registry model `name` built for `num_classes`)
    whose weights depend on the number of classes: its head. Found by building the
    architecture for one class more and comparing weight shapes layer by layer."""
    from kerascv_suite.models.registry import build

    other = build(name, num_classes=num_classes + 1, input_shape=input_shape, **overrides)
    other_layers = {layer.name: layer for layer in other.layers}
    return {
        layer.name for layer in model.layers
        if layer.weights and layer.name in other_layers
        and [tuple(w.shape) for w in layer.weights]
        != [tuple(w.shape) for w in other_layers[layer.name].weights]
    }


def build_finetune_model(name, weights, num_classes, input_shape, class_names=None,
                         **overrides):
    """Builds registry model `name` for `num_classes` and loads the backbone from `weights`.

    The head (the layers whose shapes depend on the number of classes) is new, even when
    its shapes happen to fit the source's (another set of as many classes), unless the
    source was trained on exactly `class_names`: then it is kept too.

    Args:
        name: registry name of the architecture.
        weights: a `.keras` file, an MLflow model URI (`models:/name@alias`), a weights
            catalog entry (`"imagenet"`, see `kcv weights list`) or a weights file loadable
            into `build(name, include_top=False)`.
        num_classes: classes of the new dataset.
        input_shape: `(height, width, channels)` of the new dataset.
        class_names: the new dataset's class names, or None (the head is new).

    Returns:
        `(model, transferred)`: the new model and the names of the layers that got weights.

    Raises:
        ValueError: no layer of the source fits the new model.
    """
    from kerascv_suite.models.registry import build
    from kerascv_suite.models.weights import copy_matching_weights

    from kerascv_suite.models.metadata import describe

    source = _load_source(weights, name, input_shape)
    model = build(name, num_classes=num_classes, input_shape=input_shape, **overrides)
    same_classes = (class_names is not None
                    and describe(source)["class_names"] == list(class_names))
    skip = () if same_classes else head_layers(name, model, num_classes, input_shape,
                                               **overrides)
    transferred = copy_matching_weights(source, model, skip=skip)
    if not transferred:
        raise ValueError(
            f"No layer of {weights!r} matches {name!r} by name and shape; is it the same "
            f"architecture? Received: weights={weights!r}"
        )
    return model, transferred


def freeze_layer_names(model, spec, transferred=None) -> list[str]:
    """Names of the layers that `spec` freezes.

    Args:
        spec: `"backbone"` (every layer that received pretrained weights), an int `N` or a
            digit string (the first N layers after the input), or `"until:LAYER"` (every
            layer up to and including LAYER).
        transferred: the layers that received weights (required for `"backbone"`).
    """
    layers = [layer for layer in model.layers if layer.__class__.__name__ != "InputLayer"]
    names = [layer.name for layer in layers]
    spec = str(spec)
    if spec == "backbone":
        if not transferred:
            raise ValueError("--freeze backbone needs pretrained --weights. Received: "
                             f"freeze={spec!r}")
        return [n for n in names if n in set(transferred)]
    if spec.startswith("until:"):
        last = spec.removeprefix("until:")
        if last not in names:
            raise ValueError(f"Layer {last!r} is not in model {model.name!r}. "
                             f"Received: freeze={spec!r}")
        return names[: names.index(last) + 1]
    if spec.isdigit():
        count = int(spec)
        if count > len(names):
            raise ValueError(f"Model {model.name!r} has {len(names)} layers. "
                             f"Received: freeze={spec!r}")
        return names[:count]
    raise ValueError(f"freeze must be 'backbone', a number or 'until:LAYER'. Received: "
                     f"freeze={spec!r}")


def apply_freeze(model, spec, transferred=None) -> list[str]:
    """Sets `trainable=False` on the layers of `spec` (see `freeze_layer_names`).

    Frozen BatchNormalization layers also run in inference mode (Keras 3 semantics), so their
    statistics stay those of the pretrained model. Recompile after calling this.
    """
    frozen = freeze_layer_names(model, spec, transferred)
    for name in frozen:
        model.get_layer(name).trainable = False
    return frozen


def unfreeze_all(model):
    for layer in model.layers:
        layer.trainable = True
