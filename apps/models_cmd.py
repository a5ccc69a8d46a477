"""`kcv models` and `kcv summary MODEL`."""

import json

import click

from kerascv_suite.apps.options import format_option, input_shape_option, resolve_model

TASK_CHOICES = ["classification", "detection", "segmentation", "keypoints",
                "instance_segmentation"]


@click.command("models")
@click.argument("pattern", required=False)
@click.option("--task", type=click.Choice(TASK_CHOICES), default=None, help="Only this task.")
@format_option
def models_command(pattern, task, output_format):
    """List registered models (optionally matching a glob PATTERN) with task, parameters and
    pretrained weights.

    Parameter counts are Keras counts at each model's reference input shape; the test suite
    builds every model and checks them. `pretrained` names the model's default catalog
    weights (`weights="imagenet"`; `kcv weights list` shows every entry).
    """
    from kerascv_suite import models
    from kerascv_suite.weights import list_entries

    specs = [models.get_spec(n) for n in models.list_models(pattern, task)]
    pretrained = {}
    for entry in list_entries():
        if entry.default:
            pretrained[entry.model] = entry.name
    if output_format == "json":
        rows = [
            {"name": s.name, "task": s.task, "params": s.num_params, "paper": s.paper,
             "pretrained": pretrained.get(s.name)}
            for s in specs
        ]
        click.echo(json.dumps(rows, indent=2))
        return
    if not specs:
        raise click.UsageError(f"No registered model matches {pattern!r} (task={task}).")
    width = max(len(s.name) for s in specs)
    weights_width = max([len("pretrained"), *(len(v) for v in pretrained.values())])
    click.echo(f"{'name':<{width}}  {'task':<14}  {'params':>12}  "
               f"{'pretrained':<{weights_width}}  paper")
    for s in specs:
        params = f"{s.num_params:,}" if s.num_params is not None else "-"
        weights = pretrained.get(s.name, "-")
        click.echo(f"{s.name:<{width}}  {s.task:<14}  {params:>12}  "
                   f"{weights:<{weights_width}}  {s.paper}")


@click.command("summary")
@click.argument("model")
@input_shape_option
@click.option("--num-classes", type=click.IntRange(min=1), default=None, help="Output classes.")
@format_option
def summary_command(model, input_shape, num_classes, output_format):
    """Per-layer table of MODEL: output shape, parameters, MACs, receptive field and jump.

    MODEL is a registry name, a .keras file or an MLflow model URI.
    """
    from kerascv_suite.analysis import analyze_model, format_table

    keras_model = resolve_model(model, "MODEL", input_shape, num_classes)
    stats = analyze_model(keras_model)
    if output_format == "json":
        click.echo(json.dumps(stats.as_dict(), indent=2))
    else:
        click.echo(format_table(stats))


COMMANDS = (models_command, summary_command)
