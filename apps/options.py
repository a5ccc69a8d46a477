"""Click options and parameter types shared by several `kcv` commands (defined once)."""

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
    from kerascv_suite.models.resolve import get_model

    overrides = {k: v for k, v in (("input_shape", input_shape), ("num_classes", num_classes))
                 if v is not None}
    try:
        return get_model(ref, **overrides)
    except (ValueError, FileNotFoundError) as e:
        raise click.BadParameter(str(e), param_hint=param_hint) from e


def shapes_count_option():
    """`--shapes-count` of the training commands on the built-in shapes set."""
    return click.Option(["--shapes-count"], type=click.IntRange(min=5), default=None,
                        help="Training images of the built-in shapes set [800].")
