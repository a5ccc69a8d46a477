"""`kcv export`: a model as a SavedModel, ONNX or TFLite file, checked against the original."""

import click

from kerascv_suite.apps.options import input_shape_option, resolve_model

EXPORT_FORMATS = ("saved_model", "onnx", "tflite")


@click.command("export")
@click.option("--model", required=True,
              help="Registry name (built fresh), .keras file or models:/NAME@ALIAS.")
@click.option("--format", "export_format", type=click.Choice(EXPORT_FORMATS), required=True,
              help="saved_model (a folder), onnx or tflite (a file).")
@click.option("--out", required=True, type=click.Path(),
              help="Where to write the export (folder for saved_model, file otherwise).")
@input_shape_option
@click.option("--num-classes", type=click.IntRange(min=1), default=None,
              help="Output classes (registry names only).")
@click.option("--overwrite", is_flag=True, help="Replace an existing export at --out.")
@click.option("--verify/--no-verify", default=True, show_default=True,
              help="Reload the export and compare its outputs with the Keras model.")
@click.option("--atol", type=click.FloatRange(min=0), default=1e-4, show_default=True,
              help="Largest absolute output difference --verify accepts.")
def export_command(model, export_format, out, input_shape, num_classes, overwrite, verify,
                   atol):
    """Export MODEL for inference with Keras' own `model.export`.

    The export contains the model's preprocessing, so it takes RGB images in 0..255 like the
    Keras model. ONNX and TFLite need the tensorflow backend (the default).

    \b
    Examples:
      kcv export --model lenet5 --format onnx --out lenet5.onnx
      kcv export --model models:/lenet5-digits@champion --format tflite --out lenet5.tflite
      kcv export --model best.keras --format saved_model --out exported/lenet5
    """
    from kerascv_suite.export import export_model, verify_export

    keras_model = resolve_model(model, "--model", input_shape, num_classes)
    try:
        path = export_model(keras_model, out, export_format, overwrite=overwrite)
    except FileExistsError as e:
        raise click.BadParameter(f"{e} (use --overwrite). Received: --out {out}",
                                 param_hint="--out") from e
    except ValueError as e:
        raise click.UsageError(str(e)) from e
    click.echo(f"Exported {model} ({export_format}) to {path}")
    if not verify:
        return
    check = verify_export(keras_model, path, export_format)
    message = (f"max |export - keras| = {check.max_abs_diff:.3g} on {check.batch_size} "
               f"random images (atol {atol:g})")
    if not check.ok(atol):
        raise click.ClickException(f"The export does not match the model: {message}")
    click.echo(f"Verified: {message}")


COMMANDS = (export_command,)
