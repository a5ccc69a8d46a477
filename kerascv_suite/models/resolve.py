"""One entry point for every place that accepts a model: name, `.keras` file or MLflow URI."""

import os

from kerascv_suite.models.registry import build, get_spec, is_registered
from kerascv_suite.models.weights import is_mlflow_uri


def get_model(ref, /, **overrides):
    """Returns a `keras.Model` for `ref`.

    Args:
        ref: a registry name (built fresh with `overrides`), a path to a `.keras` file, or an
            MLflow model URI (`models:/name@alias`, `models:/name/3`, `runs:/<id>/model`).
        **overrides: builder arguments; only valid with a registry name.

    Raises:
        ValueError: an unknown name, or overrides given for a saved model.
        FileNotFoundError: a `.keras` path that does not exist.
    """
    ref = os.fspath(ref)
    if is_registered(ref):
        return build(ref, **overrides)
    saved = is_mlflow_uri(ref) or ref.endswith(".keras")
    if saved and overrides:
        raise ValueError(
            f"Builder overrides ({', '.join(sorted(overrides))}) only apply to registry names; "
            f"{ref!r} is a saved model. Received: ref={ref!r}"
        )
    if is_mlflow_uri(ref):
        import mlflow.keras

        return mlflow.keras.load_model(ref)
    if ref.endswith(".keras"):
        if not os.path.isfile(ref):
            raise FileNotFoundError(f"No .keras file at {ref!r}. Received: ref={ref!r}")
        import keras

        import kerascv_suite.layers  # noqa: F401  (registers the custom layers for loading)

        return keras.saving.load_model(ref)
    get_spec(ref)  # raises the "unknown model, did you mean" error
