"""Loading weights into a built model from a local file or an MLflow model URI."""

import os

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
            "`weights` must be None, a local weights file or an MLflow model URI; "
            f"no file exists at that path. Received: weights={weights!r}"
        )
    try:
        model.load_weights(path)
    except ValueError as e:
        raise ValueError(
            f"Could not load weights file {path!r} into model {model.name!r}: {e}"
        ) from e
    return model
