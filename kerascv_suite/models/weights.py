"""Loading weights into a built model: a local file, an MLflow model URI, or catalog weights
by name (`build(name, weights="imagenet")`, see `kerascv_suite.weights`)."""

import logging
import os

import numpy as np

logger = logging.getLogger(__name__)
# The builder arguments that change weight shapes: the checkpoint's head needs them equal.
HEAD_ARGS = ("input_shape", "num_classes", "include_top")

MLFLOW_SCHEMES = ("models:/", "runs:/", "mlflow-artifacts:/")


def is_mlflow_uri(value) -> bool:
    return isinstance(value, str) and value.startswith(MLFLOW_SCHEMES)


def load_weights(model, weights):
    """Loads `weights` into `model` in place and returns the model.

    Args:
        model: a built `keras.Model`.
        weights: `None` (keep the random initialization); a local `.weights.h5`, `.keras` or
            legacy `.h5` file (keras.applications' ImageNet files load as they are when the
            architecture matches); or an MLflow model URI (`models:/name@alias`,
            `models:/name/3`, `runs:/<run_id>/model`), whose weights are copied over.

    Raises:
        FileNotFoundError: a local file that does not exist.
        ValueError: a file or URI whose weights do not fit the architecture.
    """
    if weights is None:
        return model
    if is_mlflow_uri(weights):
        import mlflow.keras

        source = mlflow.keras.load_model(weights)
        try:
            model.set_weights(source.get_weights())
        except ValueError as e:
            raise ValueError(
                f"The weights of {weights!r} do not fit model {model.name!r}: {e} "
                f"Received: weights={weights!r}"
            ) from e
        return model
    path = os.fspath(weights)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            "`weights` must be None, a local weights file, an MLflow model URI or catalog "
            "weights built by name (`build(name, weights='imagenet')`, `kcv weights list`); "
            f"no file exists at that path. Received: weights={weights!r}"
        )
    try:
        model.load_weights(path)
    except ValueError as e:
        raise ValueError(
            f"Could not load weights file {path!r} into model {model.name!r}: {e}"
        ) from e
    return model


def copy_matching_weights(source, target, skip=()) -> list[str]:
    """Copies weights layer by layer (same name, same weight shapes) from `source` to
    `target`, except the layers named in `skip`; returns the names of the target layers
    that received them."""
    source_layers = {layer.name: layer for layer in source.layers}
    copied = []
    for layer in target.layers:
        twin = source_layers.get(layer.name)
        if twin is None or not layer.weights or layer.name in skip:
            continue
        values = twin.get_weights()
        if [np.shape(v) for v in values] != [tuple(w.shape) for w in layer.weights]:
            continue
        layer.set_weights(values)
        copied.append(layer.name)
    return copied


def convert_checkpoint(spec, path, entry=None, **overrides):
    """Our model `spec` with the weights of a torchvision checkpoint file at `path`.

    Args:
        spec: the `ModelSpec` of the architecture.
        path: a PyTorch state dict file (`.pth`).
        entry: the catalog entry the file belongs to; None uses the model's torchvision entry
            for the layout, preprocessing and input size.
        **overrides: builder arguments (e.g. `num_classes` of the checkpoint).

    Returns:
        The converted model (its BatchNorm epsilon set to the checkpoint's).
    """
    from kerascv_suite.weights import WeightsError, convert_state_dict, list_entries
    from kerascv_suite.weights import read_state_dict, set_bn_epsilon

    if entry is None:
        candidates = [e for e in list_entries(model=spec.name) if e.source == "torchvision"]
        if not candidates:
            raise WeightsError(f"No torchvision layout is known for model {spec.name!r}; the "
                               "models with one: "
                               f"{sorted({e.model for e in list_entries() if e.converter})}. "
                               f"Received: model={spec.name!r}")
        entry = candidates[0]
    model = spec.build(**{**entry.builder_args(), **overrides})
    convert_state_dict(model, read_state_dict(path), entry.converter)
    set_bn_epsilon(model, entry.bn_epsilon)
    return model


def pretrained_weights_file(spec, entry) -> str:
    """A local file of `entry`'s weights that loads into `spec.build(**entry.builder_args())`:
    the downloaded file itself (keras.applications), or the Keras weights converted from it
    once and cached (torchvision)."""
    from kerascv_suite.weights import converted_path, fetch

    path = fetch(entry)
    if entry.format == "keras_h5":
        return path
    out = converted_path(entry)
    if not os.path.isfile(out):
        model = convert_checkpoint(spec, path, entry)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        temporary = f"{out[: -len('.weights.h5')]}.{os.getpid()}.tmp.weights.h5"
        try:
            model.save_weights(temporary)
            os.replace(temporary, out)
        finally:
            if os.path.exists(temporary):
                os.remove(temporary)
    return out


def build_pretrained(spec, weights, **overrides):
    """Builds `spec` with catalog weights: `"imagenet"` (the model's default entry) or an
    entry name.

    The model gets the preprocessing and BatchNorm epsilon the weights were trained with and
    the checkpoint's class names. With another `num_classes`, `input_shape` or `include_top`
    than the checkpoint's, every layer whose name and shapes match is kept and the rest (the
    head) starts fresh; one log line says which.

    Raises:
        WeightsError: unknown weights, weights of another model, a `preprocessing` override
            that contradicts the weights, or a download / verification / conversion failure.
    """
    from kerascv_suite.models.metadata import with_metadata
    from kerascv_suite.weights import WeightsError, resolve_entry, set_bn_epsilon

    entry = resolve_entry(spec.name, weights)
    reference = entry.builder_args()
    requested_mode = overrides.get("preprocessing", entry.preprocessing)
    if requested_mode != entry.preprocessing:
        raise WeightsError(
            f"Weights {entry.name!r} were trained with preprocessing={entry.preprocessing!r}; "
            f"drop the override or pick other weights. Received: preprocessing={requested_mode!r}"
        )
    requested = {**reference, **overrides}
    if requested.get("input_shape") is not None:
        requested["input_shape"] = tuple(requested["input_shape"])
    path = pretrained_weights_file(spec, entry)
    model = spec.build(**requested)
    if all(requested.get(k) == reference[k] for k in HEAD_ARGS):
        model.load_weights(path)
        model = with_metadata(model, class_names=entry.class_names)
    else:
        source = spec.build(**reference)
        source.load_weights(path)
        copied = copy_matching_weights(source, model)
        fresh = [layer.name for layer in model.layers if layer.weights and layer.name not in copied]
        changed = ", ".join(f"{k}={requested.get(k)!r}" for k in HEAD_ARGS
                            if requested.get(k) != reference[k])
        logger.warning(
            "%s: %s differs from the checkpoint's; kept %d pretrained layers, new: %s",
            entry.name, changed, len(copied), ", ".join(fresh) or "none",
        )
    set_bn_epsilon(model, entry.bn_epsilon)
    return model
