"""Click options and parameter types shared by several `kcv` commands (defined once)."""

import os

import click


class ShapeType(click.ParamType):
    """`H,W,C` (or `H,W` with 3 channels implied) -> a tuple of positive ints."""

    name = "H,W,C"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        try:
            parts = tuple(int(p) for p in str(value).replace("x", ",").split(","))
        except ValueError:
            self.fail(f"expected integers like 224,224,3. Received: {value!r}", param, ctx)
        if len(parts) == 2:
            parts = (*parts, 3)
        if len(parts) != 3 or min(parts) < 1:
            self.fail(f"expected H,W,C with positive values. Received: {value!r}", param, ctx)
        return parts


SHAPE = ShapeType()

input_shape_option = click.option(
    "--input-shape",
    type=SHAPE,
    default=None,
    help="Input shape H,W,C (default: the model's reference shape).",
)
format_option = click.option(
    "--format",
    "output_format",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="Human-readable table or JSON for machines.",
)


def resolve_model(ref, param_hint, input_shape=None, num_classes=None):
    """`get_model(ref)` with the given builder overrides; bad values -> `click.BadParameter`.

    Args:
        ref: registry name, `.keras` file or MLflow model URI.
        param_hint: the option or argument to name in the error (`"--model"`, `"MODEL"`).
        input_shape / num_classes: builder overrides; None leaves the default.
    """
    from kerascv_suite.apps.errors import InputError
    from kerascv_suite.models.resolve import ModelFileError, get_model

    overrides = {k: v for k, v in (("input_shape", input_shape), ("num_classes", num_classes))
                 if v is not None}
    try:
        return get_model(ref, **overrides)
    except ModelFileError as e:  # the option is right, the file it names is not
        raise InputError(str(e)) from e
    except (ValueError, FileNotFoundError) as e:
        raise click.BadParameter(str(e), param_hint=param_hint) from e


def shapes_count_option():
    """`--shapes-count` of the training commands on the built-in shapes set."""
    return click.Option(["--shapes-count"], type=click.IntRange(min=5), default=None,
                        help="Training images of the built-in shapes set [800].")


# The built-in set each task trains and evaluates on when --data is not a folder.
BUILTIN_DATA = {"classification": "digits", "detection": "shapes", "segmentation": "shapes",
                "keypoints": "shapes", "instance_segmentation": "shapes"}

def check_data(data, task, param_hint="--data"):
    """`data` is the task's built-in set or a path that exists; else `click.BadParameter`
    naming what was looked for (checked before anything is written)."""
    builtin = BUILTIN_DATA.get(task)
    if data is None or data == builtin or os.path.exists(data):
        return
    others = sorted({n for t, n in BUILTIN_DATA.items() if n == data and t != task})
    if others:
        raise click.BadParameter(
            f"{data!r} is the built-in set of other tasks; {task} models use {builtin!r} or a "
            f"dataset folder. Received: {param_hint} {data}", param_hint=param_hint)
    raise click.BadParameter(
        f"no file or folder {os.path.abspath(data)!r}; give a dataset folder or the built-in "
        f"set {builtin!r}. Received: {param_hint} {data}", param_hint=param_hint)


def check_not_empty(folder, files=None, param_hint="FOLDER"):
    """An input folder of a prediction command must hold files: `click.BadParameter` when
    `files` (or, when None, the non-hidden files found under `folder`) is empty.

    Args:
        folder: the folder given on the command line.
        files: the inputs the command found in it, or None to walk `folder`.
        param_hint: the argument to name in the error.
    """
    if files is None:
        files = []
        for _, dirs, names in os.walk(folder):
            dirs[:] = [d for d in dirs if not d.startswith(".")]  # as folder_io.list_files
            files += [name for name in names if not name.startswith(".")]
    if files:
        return
    raise click.BadParameter(f"{folder!r} holds no image files; nothing to do. Received: "
                             f"{param_hint} {folder}", param_hint=param_hint)
