"""`kcv evaluate`: accuracy, top-5, per-class P/R/F1 and a confusion matrix of classifiers."""

import json

import click

BACKENDS = ("tensorflow", "jax", "torch")


@click.command("evaluate")
@click.option("--model", "models", multiple=True, required=True,
              help="Registry name, .keras file or models:/NAME@ALIAS; repeat for an ensemble "
                   "(softmax outputs averaged).")
@click.option("--data", default="digits", show_default=True,
              help="'digits' (built in) or a folder of class folders.")
@click.option("--split", default="test", show_default=True,
              help="Split to evaluate (a folder without it is evaluated whole).")
@click.option("--tta", type=click.Choice(["10crop"]), default=None,
              help="Test-time augmentation: AlexNet's corners + centre and their mirrors.")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--image-size", type=click.IntRange(min=1), default=None,
              help="Square input side for models without a fixed input size.")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Folder for report.json and confusion_matrix.png.")
@click.option("--format", "output_format", type=click.Choice(["table", "json"]),
              default="table", show_default=True, help="Human-readable table or JSON.")
@click.option("--backend", type=click.Choice(BACKENDS), default=None,
              help="Keras backend (sets KERAS_BACKEND before Keras is imported).")
def evaluate_command(models, data, split, tta, batch_size, image_size, out, output_format,
                     backend):
    """Evaluate one classifier, or an ensemble of several, on a labelled split.

    \b
    Examples:
      kcv evaluate --model models:/lenet5-digits@champion
      kcv evaluate --model runs/train/lenet5/checkpoints/best.keras --tta 10crop --out eval/
      kcv evaluate --model a.keras --model b.keras --data ./flowers --split val
    """
    from kerascv_suite.pipelines.train_classifier import check_backend

    try:
        check_backend(backend)
    except RuntimeError as e:
        raise click.BadParameter(str(e), param_hint="--backend") from e
    from kerascv_suite.pipelines import evaluate_classifier as pipeline

    try:
        config = pipeline.EvaluateConfig(models=list(models), data=data, split=split, tta=tta,
                                         batch_size=batch_size, image_size=image_size, out=out)
        result = pipeline.run(config, log=lambda m: click.echo(m, err=True))
    except FileNotFoundError as e:
        raise click.BadParameter(str(e)) from e
    except ValueError as e:
        raise click.UsageError(str(e)) from e
    if output_format == "json":
        click.echo(json.dumps(result.as_dict(), indent=2))
        return
    click.echo(format_report(result))


def format_report(result):
    """The report as a plain-text table."""
    report = result.report
    names = report.class_names
    width = max(5, *(len(n) for n in names))
    tta = f", tta {result.config.tta}" if result.config.tta else ""
    lines = [
        f"{' + '.join(result.config.models)} on {result.config.data}/{result.config.split}"
        f" ({int(report.support.sum())} images{tta})",
        f"accuracy {report.accuracy:.4f}   top-5 {report.top5_accuracy:.4f}   "
        f"macro F1 {report.macro_f1:.4f}",
        "",
        f"{'class':<{width}}  precision  recall      f1  support",
    ]
    for name, p, r, f, s in zip(names, report.precision, report.recall, report.f1,
                                report.support):
        lines.append(f"{name:<{width}}  {p:9.4f}  {r:6.4f}  {f:6.4f}  {s:7d}")
    if result.confusion_matrix_path:
        lines += ["", f"confusion matrix: {result.confusion_matrix_path}",
                  f"report: {result.report_path}"]
    return "\n".join(lines)


COMMANDS = (evaluate_command,)
