"""`kcv train`: train an image classifier (thin: parse options, call the pipeline, report)."""

import os

import click

from kerascv_suite.pipelines.train_classifier import (
    BACKENDS,
    DISTRIBUTE_MODES,
    FORMATS,
    OPTIMIZERS,
    SCHEDULES,
)

# Options that a resumed run takes from its saved config.yaml instead.
FIXED_ON_RESUME = ("model", "data", "format", "batch_size", "image_size", "optimizer", "lr",
                    "schedule", "seed", "weights", "freeze")


@click.command("train")
@click.option("--model", default=None, help="Registry name, e.g. lenet5, resnet50 [lenet5].")
@click.option("--data", default=None, help="'digits' (built in) or a dataset folder [digits].")
@click.option("--format", "format", type=click.Choice(FORMATS), default=None,
              help="Format of a dataset folder [folders].")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Total epochs.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None)
@click.option("--image-size", type=click.IntRange(min=1), default=None,
              help="Square input side [the model's reference size].")
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), default=None)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Peak learning rate.")
@click.option("--schedule", type=click.Choice(SCHEDULES), default=None)
@click.option("--mixed-precision/--no-mixed-precision", default=None,
              help="bfloat16 compute on CPU, float16 on GPU.")
@click.option("--seed", type=int, default=None)
@click.option("--backend", type=click.Choice(BACKENDS), default=None,
              help="Keras backend (sets KERAS_BACKEND before Keras is imported).")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
              default=None, help="Recipe YAML; command-line options win over it.")
@click.option("--early-stopping", type=click.IntRange(min=1), default=None,
              help="Stop after N epochs without improving the monitored metric.")
@click.option("--run-dir", default=None, help="Run folder [runs/train/<model>, numbered].")
@click.option("--name", default=None, help="Run name under runs/train [the model name].")
@click.option("--resume", is_flag=False, flag_value="latest", default=None,
              help="Continue an interrupted run: RUN_DIR, or the latest run if no value.")
@click.option("--register", default=None, help="Register the trained model under NAME.")
@click.option("--alias", default=None, help="Alias for the registered version (champion).")
@click.option("--weights", default=None,
              help="Fine-tune from a .keras file, a weights file or models:/NAME@ALIAS.")
@click.option("--freeze", default=None,
              help="Phase 1 freezing: backbone, N (first N layers) or until:LAYER.")
@click.option("--head-epochs", type=click.IntRange(min=0), default=None,
              help="Epochs of phase 1 (frozen) before unfreezing at lr x 0.1.")
@click.option("--distribute", type=click.Choice(DISTRIBUTE_MODES), default=None,
              help="Distribution strategy.")
@click.option("--tracking-uri", default=None,
              help="MLflow store [MLFLOW_TRACKING_URI, else sqlite:///mlflow.db].")
@click.option("--experiment", default=None, help="MLflow experiment [kcv-train].")
@click.option("--workers", type=click.IntRange(min=0), default=None,
              help="Data loader processes [all cores; 0 = in-process].")
def train_command(config_path, resume, **options):
    """Train a classifier, with checkpoints, MLflow tracking and a test-set report.

    \b
    Examples:
      kcv train --model lenet5
      kcv train --model resnet18 --data ./flowers --image-size 96 --epochs 20
      kcv train --model resnet50 --data ./cats --weights models:/imagenet@champion \\
                --freeze backbone
      kcv train --resume            # continue the latest interrupted run
    """
    from kerascv_suite.pipelines import train_classifier as pipeline

    echo_result(run_training(pipeline, config_path, resume, options))


def echo_result(result, labels=None):
    """Prints a training run's closing lines: time, epochs, test metrics, where it went.

    Args:
        result: the pipeline's `TrainResult`.
        labels: `{metric key: printed label}` to print those test metrics in that order;
            None prints every test metric under its own key.
    """
    if not result.chief:
        click.echo(f"Worker done in {result.seconds:.0f} s: {result.epochs_trained} epochs "
                   "(the chief worker writes the run folder and the MLflow run).")
        return
    metrics = result.test_metrics
    labels = labels or {key: key for key in metrics}
    text = ", ".join(f"{label} {metrics.get(key, float('nan')):.4f}"
                     for key, label in labels.items())
    click.echo(f"Done in {result.seconds:.0f} s: {result.epochs_trained} epochs, {text}.")
    click.echo(f"Run folder: {os.fspath(result.run_dir)}; MLflow run {result.mlflow_run_id}; "
               f"model {result.model_uri}")


def run_training(pipeline, config_path, resume, options, fixed_on_resume=FIXED_ON_RESUME):
    """Resolves the config (new run or `--resume`) and runs a training pipeline module.

    `pipeline` provides `load_config`, `load_run_config`, `resolve_resume_dir`, `run`,
    `check_backend`, `TrackingUnavailable` and `TrainingDiverged` (train_classifier does;
    `kcv train-segmenter` passes its own pipeline). Errors become click errors.
    """
    backend = options.get("backend")
    if backend is not None:
        # Keras reads KERAS_BACKEND once, at import; nothing has imported it yet.
        try:
            pipeline.check_backend(backend)
        except RuntimeError as e:
            raise click.BadParameter(str(e), param_hint="--backend") from e
    try:
        if resume is not None:
            run_dir = pipeline.resolve_resume_dir(resume, **(
                {"project": options["project"]} if options.get("project") else {}))
            ignored = [f"--{k.replace('_', '-')}" for k in fixed_on_resume
                       if options.get(k) is not None]
            if ignored or config_path:
                click.echo(f"Resuming {run_dir} with its saved config; ignoring "
                           f"{', '.join(ignored + (['--config'] if config_path else []))}.")
            kept = {k: v for k, v in options.items()
                    if k not in fixed_on_resume + ("run_dir", "name", "project")}
            config = pipeline.load_run_config(run_dir, **kept)
        else:
            config = pipeline.load_config(config_path, **options)
    except (ValueError, FileNotFoundError) as e:
        raise click.UsageError(str(e)) from e
    try:
        return pipeline.run(config, resume=resume is not None, log=click.echo)
    except (pipeline.TrackingUnavailable, pipeline.TrainingDiverged, FileExistsError) as e:
        raise click.ClickException(str(e)) from e
    except (ValueError, FileNotFoundError) as e:
        raise click.UsageError(str(e)) from e


def shared_options(*exclude):
    """`kcv train`'s options for another training command (train-segmenter,
    train-detector, train-keypoints), less `exclude`: those whose meaning or default differs
    there."""
    return [p for p in train_command.params if p.name not in exclude]


COMMANDS = (train_command,)
