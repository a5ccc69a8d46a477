"""Errors of a training run (importable without Keras, so the CLI can catch them)."""


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class TrackingUnavailable(RuntimeError):
    """The MLflow tracking store cannot be reached; nothing was trained."""


class RunFolderInUse(FileExistsError):
    """A live process trains the run folder (its lock file names the process); nothing was
    written. A `FileExistsError`, like a new run aimed at a folder that already holds one."""
