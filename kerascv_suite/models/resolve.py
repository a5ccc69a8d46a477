"""One entry point for every place that accepts a model: name, `.keras` file or MLflow URI.

`load_keras_file` loads a `.keras` archive and turns Keras' loading errors into one
`ModelFileError` naming the file and the cause: not a zip archive (or a truncated one), no
`config.json` in it, a function or class in the config that cannot be imported (which one,
from which module), weights that cannot be read.
"""

import json
import os
import re
import zipfile

from kerascv_suite.models.registry import build, get_spec, is_registered
from kerascv_suite.models.weights import is_mlflow_uri

# Keras' message when a serialized function or class cannot be found at load time.
_NOT_LOCATED = re.compile(r"Could not (?:locate|deserialize) (function|class) '([^']+)'")


class ModelFileError(ValueError):
    """A `.keras` file that exists but cannot be loaded.

    Attributes:
        path: the file.
        reason: what is wrong with it and what to do, one line.
    """

    def __init__(self, path, reason):
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"Cannot load the model file {self.path}: {reason}")


def get_model(ref, /, **overrides):
    """Returns a `keras.Model` for `ref`.

    Args:
        ref: a registry name (built fresh with `overrides`), a path to a `.keras` file, or an
            MLflow model URI (`models:/name@alias`, `models:/name/3`, `runs:/<id>/model`).
        **overrides: builder arguments; only valid with a registry name.

    Raises:
        ValueError: an unknown name, or overrides given for a saved model.
        FileNotFoundError: a `.keras` path that does not exist.
        ModelFileError: a `.keras` file that cannot be loaded (a `ValueError`).
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
        return load_keras_file(ref)
    get_spec(ref)  # raises the "unknown model, did you mean" error


def load_keras_file(path):
    """`keras.saving.load_model(path)` (safe mode, the project's layers registered), with
    every way a file can be broken reported as one `ModelFileError`.

    Raises:
        FileNotFoundError: no file at `path`.
        ModelFileError: the file is not a `.keras` archive, is truncated, names a function or
            class that cannot be imported, or holds weights that cannot be read.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No .keras file at {path!r}. Received: ref={path!r}")
    config = read_archive_config(path)
    import keras

    # Register every serializable class a saved model may name: layers, the models'
    # own classes, and the losses and metrics a training checkpoint was compiled with.
    import kerascv_suite.layers  # noqa: F401
    import kerascv_suite.losses  # noqa: F401
    import kerascv_suite.metrics.segmentation  # noqa: F401
    import kerascv_suite.models  # noqa: F401

    try:
        return keras.saving.load_model(path)
    except TypeError as error:
        cause = root_cause(error)
        match = _NOT_LOCATED.search(str(cause))
        if match is None:
            raise ModelFileError(path, f"its config does not rebuild a model ({cause}); it "
                                       "was probably saved by another version of Keras or "
                                       "kerascv-suite") from error
        kind, name = match.groups()
        module = module_of(config, name)
        where = f"{module}.{name}" if module and module != "builtins" else name
        raise ModelFileError(
            path, f"it uses the {kind} {where!r}, which cannot be imported; the module that "
                  f"defines it must be importable when the model loads (install it, or "
                  f"import it first, registered with @keras.saving.register_keras_serializable), "
                  f"or the file was saved by another version of the code") from error
    except OSError as error:
        raise ModelFileError(path, f"its weights cannot be read ({root_cause(error)}); the "
                                   "file is truncated or damaged: copy or save it again") \
            from error
    except (zipfile.BadZipFile, EOFError) as error:
        raise ModelFileError(path, f"the archive is damaged ({error}); copy or save it "
                                   "again") from error


def read_archive_config(path):
    """The `config.json` mapping of the `.keras` archive at `path` (`ModelFileError` when
    the file is not a readable `.keras` zip archive)."""
    if not zipfile.is_zipfile(path):
        size = os.path.getsize(path)
        raise ModelFileError(path, f"not a .keras archive (not a zip file, {size} bytes: "
                                   "truncated, or saved in another format such as .h5 or "
                                   "SavedModel); save it with model.save('name.keras')")
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if "config.json" not in names:
                raise ModelFileError(path, f"a zip file but not a .keras archive (no "
                                           f"config.json; holds {sorted(names)[:5]})")
            return json.loads(archive.read("config.json"))
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as error:
        if isinstance(error, ModelFileError):
            raise
        raise ModelFileError(path, f"the archive is truncated or damaged ({error}); copy or "
                                   "save it again") from error


def root_cause(error):
    """The innermost exception of `error`'s chain (Keras wraps a missing function in one
    TypeError per enclosing layer)."""
    seen = {id(error)}
    while (error.__cause__ or error.__context__) is not None:
        error = error.__cause__ or error.__context__
        if id(error) in seen:
            break
        seen.add(id(error))
    return error


def module_of(config, name):
    """The `module` of the first serialized object in `config` whose `config` or
    `class_name` is `name` (where Keras records a function's or class's home), or None."""
    stack = [config]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if name in (node.get("config"), node.get("class_name"),
                        node.get("registered_name")) and "module" in node:
                return node["module"]
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return None
