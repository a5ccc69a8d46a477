"""The one place where `kcv` turns exceptions into one-line click errors.

`to_click_error(error)` maps what the library raises to a `click.ClickException` whose message
says what failed, the file and entry, and what to do:

* bad input, exit status 2 (`InputError`): the data layer's `DataError` family
  (`AnnotationError`, `UnsafePathError`, `BadImageError`, `--strict` refusals), a model file
  that cannot be loaded (`ModelFileError`), an MLflow model or run that does not exist,
  `ValueError` / `FileNotFoundError` that reach the command;
* runtime failures, exit status 1: an optional package that is not installed (named with
  the pip extra that installs it), a diverged loss, an unreachable tracking store, a full
  disk or a read-only run folder (`OSError`), any other MLflow error, and anything else
  (named by its type, with `--debug` for the traceback).

Only click and the standard library are imported at module level (`kcv --help` stays light).
"""

import errno
import os

import click

DEBUG_HINT = "run with --debug (or KCV_DEBUG=1) for the traceback"


class InputError(click.ClickException):
    """Bad input (data, annotations, a model reference): exit status 2, like a usage error,
    but without the usage text (the option was right; what it points at is not)."""

    exit_code = 2


def one_line(text):
    """`text` with its lines joined (an error message is one line on the console)."""
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


def to_click_error(error, data_option=True):
    """The `click.ClickException` to show for `error` (any exception but click's own).

    `data_option`: the failed command reads a dataset given by `--data` (a data error's hint
    names it); False for commands that take folders of images as arguments."""
    for check, convert in _CONVERTERS:
        if check(error):
            return _data_error(error, data_option) if convert is _data_error else convert(error)
    return click.ClickException(
        one_line(f"{type(error).__name__}: {error}") + f" ({DEBUG_HINT})")


def _data_error(error, data_option=True):
    from kerascv_suite.data.errors import AnnotationError, BadImageError, UnsafePathError

    text = one_line(error)
    if isinstance(error, UnsafePathError):
        hint = ("file names in annotations must stay inside the dataset folder; fix the entry "
                "or move the file under the folder given to --data")
    elif isinstance(error, AnnotationError):
        hint = ("fix the entry or remove the file; `kcv data check PATH --format FMT` lists "
                "every problem")
    elif isinstance(error, BadImageError):
        hint = ("replace or remove the file (`kcv data check PATH --format FMT` lists every "
                "unreadable image)")
    elif data_option:
        hint = ("check the folder given to --data (and --format); `kcv data check PATH "
                "--format FMT` reads it and lists every problem")
    else:
        return InputError(text)
    if "--" in text or "`kcv " in text:  # the library already says what to do
        return InputError(text)
    return InputError(f"{text}; {hint}")


def _is_type(names):
    """A check for exceptions whose class (or a base) is named in `names` (module.Class):
    testing by name imports nothing (checking against ModelFileError must not import Keras
    after a data error, nor MLflow after anything else)."""

    def check(error):
        return any(f"{c.__module__}.{c.__qualname__}" in names for c in type(error).__mro__)

    return check


def _mlflow_error(error):
    import mlflow

    store = mlflow.get_tracking_uri()
    code = getattr(error, "error_code", "")
    text = one_line(getattr(error, "message", error))
    if code == "RESOURCE_DOES_NOT_EXIST" or "not found" in text:
        return InputError(
            f"{text} (searched the MLflow store {store}); `kcv ui` lists the registered models "
            "(its Models page); if the model lives in another store, set MLFLOW_TRACKING_URI "
            "to it")
    return click.ClickException(f"MLflow store {store}: {text}")


def _os_error(error):
    where = error.filename or "a file"
    if error.filename2:
        where = f"{where} -> {error.filename2}"
    reason = error.strerror or one_line(error)
    if error.errno == errno.ENOSPC:
        return click.ClickException(
            f"No space left on the device writing {where}; free some space or write the run "
            "elsewhere with --run-dir (or --project / --out)")
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return click.ClickException(
            f"Cannot write {where} ({reason}); choose a writable folder with --run-dir "
            "(or --project / --out), or fix its permissions")
    if isinstance(error, FileNotFoundError):
        return InputError(f"No such file or folder: {where}; check the path")
    return click.ClickException(f"{reason}: {where} ({DEBUG_HINT})")


# Optional packages (top-level module -> the pyproject extra that installs it).
EXTRAS = {"onnx": "export", "onnxruntime": "export", "tf2onnx": "export",
          "ai_edge_litert": "export", "jax": "jax", "jaxlib": "jax", "torch": "torch"}


def _missing_extra(error):
    extra = EXTRAS[error.name.split(".")[0]]
    return click.ClickException(
        f"This needs the optional package {error.name.split('.')[0]!r}, which is not "
        f"installed; install it with `pip install 'kerascv-suite[{extra}]'` (in a checkout: "
        f"`pip install '.[{extra}]'`)")


def _training_error(error):
    return click.ClickException(one_line(error))


_CONVERTERS = (
    (_is_type({"kerascv_suite.data.errors.DataError"}), _data_error),
    (_is_type({"kerascv_suite.models.resolve.ModelFileError"}),
     lambda e: InputError(one_line(e))),
    (_is_type({"kerascv_suite.training.errors.TrackingUnavailable",
               "kerascv_suite.training.errors.TrainingDiverged"}), _training_error),
    (_is_type({"mlflow.exceptions.MlflowException"}), _mlflow_error),
    (lambda e: isinstance(e, ModuleNotFoundError)
     and (e.name or "").split(".")[0] in EXTRAS, _missing_extra),
    (lambda e: isinstance(e, FileExistsError), lambda e: click.ClickException(one_line(e))),
    (lambda e: isinstance(e, OSError), _os_error),
    (lambda e: isinstance(e, ValueError), lambda e: InputError(one_line(e))),
)


def debug_enabled(flag=False):
    """`--debug`, or `KCV_DEBUG` set to anything but empty / 0 / false."""
    return bool(flag) or os.environ.get("KCV_DEBUG", "").lower() not in ("", "0", "false")
