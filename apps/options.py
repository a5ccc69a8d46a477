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
