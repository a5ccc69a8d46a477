"""Averaging ensembles of classifiers as one functional model."""

import keras

from kerascv_suite.models.registry import get_spec


def _ends_in_softmax(model):
    last = model.layers[-1]
    if isinstance(last, keras.layers.Softmax):
        return True
    return getattr(last, "activation", None) is keras.activations.softmax


def ensemble(models, name="ensemble", **overrides):
    """Builds one model that feeds the same image to several classifiers and averages their
    softmax outputs.

    Args:
        models: a list of at least two classifiers: `keras.Model` instances and/or registry
            names (built fresh with `overrides`). Each must take one image input and return
            `(batch, num_classes)` probabilities from a softmax.
        name: name of the ensemble model.
        **overrides: builder arguments shared by the models given by name, e.g.
            `num_classes=10, input_shape=(64, 64, 3)`.

    Returns:
        A `keras.Model` mapping `(batch, height, width, channels)` images to the
        `(batch, num_classes)` mean of the members' probabilities. Members are nested models
        (their weights stay shared with the instances passed in).

    Raises:
        ValueError: fewer than two models, members with several inputs or outputs, without a
            final softmax, or with different input shapes or numbers of classes.

    Example:
        >>> model = ensemble(["resnet18", "squeezenet1_1"], num_classes=10,
        ...                  input_shape=(64, 64, 3))
    """
    models = list(models)
    if len(models) < 2:
        raise ValueError(f"An ensemble needs at least two models. Received: models={models!r}")
    counts = {m: models.count(m) for m in models if isinstance(m, str)}
    members = []
    for i, member in enumerate(models):
        if isinstance(member, str):
            # The same registry name twice needs distinct names inside one functional model.
            kwargs = {"name": f"{member}_{i}"} if counts[member] > 1 else {}
            # ModelSpec.build, since registry.build's own `name` argument is the registry name.
            member = get_spec(member).build(**{**overrides, **kwargs})
        if not isinstance(member, keras.Model):
            raise ValueError(
                "Each ensemble member must be a keras.Model or a registry name. "
                f"Received: {member!r}"
            )
        members.append(member)

    for m in members:
        if len(m.inputs) != 1 or len(m.outputs) != 1:
            raise ValueError(
                f"Ensemble members need one input and one output; model {m.name!r} has "
                f"{len(m.inputs)} inputs and {len(m.outputs)} outputs."
            )
        if len(m.outputs[0].shape) != 2:
            raise ValueError(
                f"Ensemble members must output (batch, num_classes); model {m.name!r} "
                f"outputs {tuple(m.outputs[0].shape)}."
            )
        if not _ends_in_softmax(m):
            raise ValueError(
                f"Ensemble members must end in a softmax (classifier_activation='softmax'); "
                f"model {m.name!r} ends with layer {m.layers[-1].name!r}."
            )
    input_shapes = {tuple(m.inputs[0].shape[1:]) for m in members}
    if len(input_shapes) > 1:
        raise ValueError(
            "Ensemble members must share their input shape. Received: "
            + ", ".join(f"{m.name}: {tuple(m.inputs[0].shape[1:])}" for m in members)
        )
    class_counts = {m.outputs[0].shape[-1] for m in members}
    if len(class_counts) > 1:
        raise ValueError(
            "Ensemble members must share num_classes. Received: "
            + ", ".join(f"{m.name}: {m.outputs[0].shape[-1]}" for m in members)
        )
    # Two loads of one file share a name, but layers of one functional model need distinct
    # names: re-wrap a repeated member under a new name (its weights stay shared).
    seen = set()
    for i, m in enumerate(members):
        if m.name in seen:
            members[i] = keras.Model(m.inputs, m.outputs, name=f"{m.name}_{i}")
        seen.add(members[i].name)

    inputs = keras.Input(
        shape=members[0].inputs[0].shape[1:], dtype=members[0].inputs[0].dtype, name="image"
    )
    # A model reloaded from .keras returns a one-element list when called; take the tensor.
    probabilities = [keras.tree.flatten(m(inputs))[0] for m in members]
    outputs = keras.layers.Average(name="average")(probabilities)
    return keras.Model(inputs, outputs, name=name)
