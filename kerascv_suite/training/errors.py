"""Errors of a training run (importable without Keras, so the CLI can catch them)."""


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class TrackingUnavailable(RuntimeError):
    """The MLflow tracking store cannot be reached; nothing was trained."""
