"""`kcv train` (any model: a classifier, detector, segmenter or keypoint model) and its task
aliases `train-detector`, `train-segmenter`, `train-keypoints` (thin: parse options, resolve
the config, call the runner, print the result)."""

import os

import click

from kerascv_suite.apps.options import check_data
from kerascv_suite.tasks.config import BACKENDS, DISTRIBUTE_MODES, FORMATS, OPTIMIZERS, SCHEDULES

# Options that a resumed run takes from its saved config.yaml instead.
FIXED_ON_RESUME = ("model", "data", "format", "batch_size", "image_size", "optimizer", "lr",
                   "schedule", "seed", "weights", "backbone_weights", "freeze", "recipe",
                   "shapes_count", "max_boxes", "max_proposals", "loss", "width", "sigma",
                   "mask_fraction")
_UNIT = click.FloatRange(min=0, max=1)
TASK_DEFAULT_MODELS = {None: "lenet5", "detection": "faster_rcnn", "segmentation": "unet",
                       "keypoints": "hourglass", "instance_segmentation": "mask_rcnn"}
# `kcv train-detector` also trains instance segmenters (Mask R-CNN is a detector with masks).
ALSO_TRAINED_BY = {"detection": ("instance_segmentation",)}

OPTIONS = [
    click.Option(["--model"], default=None,
                 help="Registry name: a classifier (lenet5, resnet50...), detector "
                      "(faster_rcnn, ssd300, yolo_v1...), segmenter (unet, fcn8s...) or "
                      "keypoint model (hourglass); its task decides what trains."),
    click.Option(["--data"], default=None,
                 help="A built-in set (classifiers: digits; other tasks: shapes) or a "
                      "dataset folder."),
    click.Option(["--format", "format"], type=click.Choice(FORMATS), default=None,
                 help="Format of a dataset folder [detected]."),
    click.Option(["--recipe"], default=None,
                 help="Recipe (a registered model variant plus its training settings) "
                      "[the model's recipe for the data, if any]; 'none' trains the "
                      "registered paper model."),
    click.Option(["--epochs"], type=click.IntRange(min=1), default=None, help="Total epochs."),
    click.Option(["--batch-size"], type=click.IntRange(min=1), default=None),
    click.Option(["--image-size"], type=click.IntRange(min=1), default=None,
                 help="Square input side [the model's reference size]."),
    click.Option(["--optimizer"], type=click.Choice(OPTIMIZERS), default=None),
    click.Option(["--lr"], type=click.FloatRange(min=0, min_open=True), default=None,
                 help="Peak learning rate."),
    click.Option(["--schedule"], type=click.Choice(SCHEDULES), default=None),
    click.Option(["--mixed-precision/--no-mixed-precision"], default=None,
                 help="bfloat16 compute on CPU, float16 on GPU."),
    click.Option(["--seed"], type=int, default=None),
    click.Option(["--backend"], type=click.Choice(BACKENDS), default=None,
                 help="Keras backend (sets KERAS_BACKEND before Keras is imported)."),
    click.Option(["--config", "config_path"], type=click.Path(exists=True, dir_okay=False),
                 default=None, help="Config YAML; command-line options win over it."),
    click.Option(["--early-stopping"], type=click.IntRange(min=1), default=None,
                 help="Stop after N epochs without improving the monitored metric."),
    click.Option(["--run-dir"], default=None,
                 help="Run folder [<project>/<model>, numbered when taken]."),
    click.Option(["--name"], default=None, help="Run name under the project [the model name]."),
    click.Option(["--project"], default=None,
                 help="Parent folder of run folders [runs/train, runs/detect, runs/segment, "
                      "runs/keypoints by task]."),
    click.Option(["--resume"], is_flag=False, flag_value="latest", default=None,
                 help="Continue an interrupted run: RUN_DIR, or the latest run if no value."),
    click.Option(["--register"], default=None, help="Register the trained model under NAME."),
    click.Option(["--alias"], default=None, help="Alias for the registered version (champion)."),
    click.Option(["--weights"], default=None,
                 help="Start from a .keras file, a weights file or models:/NAME@ALIAS."),
    click.Option(["--backbone-weights"], default=None,
                 help="Detectors and segmenters with a VGG16 / ResNet-50 backbone: start "
                      "it from ImageNet weights: imagenet, a catalog entry (kcv weights "
                      "list vgg16*) or a file."),
    click.Option(["--freeze"], default=None,
                 help="Phase 1 freezing: backbone, N (first N layers) or until:LAYER."),
    click.Option(["--head-epochs"], type=click.IntRange(min=0), default=None,
                 help="Epochs of phase 1 (frozen) before unfreezing at lr x 0.1."),
    click.Option(["--distribute"], type=click.Choice(DISTRIBUTE_MODES), default=None,
                 help="Distribution strategy."),
    click.Option(["--tracking-uri"], default=None,
                 help="MLflow store [MLFLOW_TRACKING_URI, else sqlite:///mlflow.db]."),
    click.Option(["--experiment"], default=None, help="MLflow experiment [kcv-train...]."),
    click.Option(["--workers"], type=click.IntRange(min=0), default=None,
                 help="Data loader processes [all cores; 0 = in-process]."),
    click.Option(["--shapes-count"], type=click.IntRange(min=5), default=None,
                 help="Training images of the built-in shapes set [800]."),
    click.Option(["--strict"], is_flag=True, default=None,
                 help="Any skipped input (unreadable image, bad box, unknown class) stops "
                      "the run with an error naming the file and entry, instead of being "
                      "skipped and counted."),
    click.Option(["--unknown-class"], type=click.Choice(("error", "skip")), default=None,
                 help="Detectors and segmenters: objects whose class is not in the "
                      "dataset's class list stop the run naming the file and entry, or are "
                      "skipped and counted [error]."),
    # Detection
    click.Option(["--score-threshold"], type=_UNIT, default=None,
                 help="Detectors: minimum score for validation, test and the logged "
                      "detector [the model's]."),
    click.Option(["--iou-threshold"], type=_UNIT, default=None,
                 help="Detectors: NMS IoU threshold [the model's]."),
    click.Option(["--max-detections"], type=click.IntRange(min=1), default=None,
                 help="Detectors: detections kept per image [the model's]."),
    click.Option(["--max-proposals"], type=click.IntRange(min=1), default=None,
                 help="Detectors: selective-search proposals per image (fast_rcnn, rcnn) "
                      "[300]."),
    click.Option(["--max-boxes"], type=click.IntRange(min=1), default=None,
                 help="Detectors: ground-truth boxes kept per image [20]."),
    click.Option(["--val-every"], type=click.IntRange(min=1), default=None,
                 help="Detectors: validation AP every N epochs (and after the last) [1]."),
    # Segmentation
    click.Option(["--loss"], type=click.Choice(("ce", "dice", "ce+dice")), default=None,
                 help="Segmenters: cross-entropy (255 ignored), Dice, or both [ce]."),
    click.Option(["--width"], type=click.FloatRange(min=0, min_open=True), default=None,
                 help="Segmenters: filter multiplier (0.25: a quarter of the paper's)."),
    click.Option(["--mask-fraction"], type=click.FloatRange(min=0, max=1, min_open=True),
                 default=None,
                 help="Segmenters: fraction of the training images whose masks are used "
                      "(a seeded choice); the others give only image labels, which "
                      "DecoupledNet learns from [1]."),
    # Keypoints
    click.Option(["--sigma"], type=click.FloatRange(min=0, min_open=True), default=None,
                 help="Keypoint models: std of the target Gaussians in heatmap cells [1]."),
]


def echo_result(result):
    """Prints a training run's closing lines: time, epochs, test metrics, where it went."""
    if not result.chief:
        click.echo(f"Worker done in {result.seconds:.0f} s: {result.epochs_trained} epochs "
                   "(the chief worker writes the run folder and the MLflow run).")
        return
    metrics = result.test_metrics
    labels = result.headline or {key: key for key in metrics}
    text = ", ".join(f"{label} {metrics.get(key, float('nan')):.4f}"
                     for key, label in labels.items())
    click.echo(f"Done in {result.seconds:.0f} s: {result.epochs_trained} epochs, {text}.")
    click.echo(f"Run folder: {os.fspath(result.run_dir)}; MLflow run {result.mlflow_run_id}; "
               f"model {result.model_uri}")


def resolve_config(task_name, config_path, resume, options):
    """The run's config: the saved one for `--resume`, else defaults < recipe < `--config`
    < options. Errors are `click.UsageError`s."""
    from kerascv_suite import tasks
    from kerascv_suite.training.state import latest_run_dir

    try:
        if resume is not None:
            if resume == "latest":
                projects = [options["project"]] if options.get("project") else \
                    sorted({t.config_class.project for t in map(tasks.get_task, tasks.TASKS)
                            if task_name in (None, t.name)})
                run_dir = latest_of(projects, latest_run_dir)
            else:
                run_dir = resume
                from pathlib import Path

                if not (Path(resume) / "config.yaml").is_file():
                    raise FileNotFoundError(f"{resume} is not a run folder (no config.yaml). "
                                            f"Received: resume={str(resume)!r}")
            ignored = [f"--{k.replace('_', '-')}" for k in FIXED_ON_RESUME
                       if options.get(k) is not None]
            if ignored or config_path:
                click.echo(f"Resuming {run_dir} with its saved config; ignoring "
                           f"{', '.join(ignored + (['--config'] if config_path else []))}.")
            kept = {k: v for k, v in options.items()
                    if k not in FIXED_ON_RESUME + ("run_dir", "name", "project")}
            return tasks.load_run_config(run_dir, **kept)
        if options.get("model") is None and not config_path and task_name is not None:
            options = {**options, "model": TASK_DEFAULT_MODELS[task_name]}
        config = tasks.load_config(config_path, task=task_name, **options)
    except (ValueError, FileNotFoundError) as e:
        raise click.UsageError(str(e)) from e
    if task_name is not None and config.task not in (task_name,
                                                     *ALSO_TRAINED_BY.get(task_name, ())):
        raise click.UsageError(f"{config.model} is a {config.task} model; train it with "
                               f"`kcv train --model {config.model}`. Received: "
                               f"--model {config.model}")
    return config


def latest_of(projects, latest_run_dir):
    """The most recently updated resumable run of any of `projects`."""
    found = []
    for project in projects:
        try:
            found.append(latest_run_dir(project))
        except FileNotFoundError:
            continue
    if not found:
        raise FileNotFoundError(f"No run with a checkpoint under {', '.join(projects)} to "
                                f"resume. Received: --resume")
    from kerascv_suite.training.state import checkpoint_dir

    return max(found, key=lambda p: checkpoint_dir(p).stat().st_mtime)


def run_training(task_name, config_path, resume, options):
    """Resolves the config and runs it with its task; errors become click errors."""
    from kerascv_suite.training.errors import TrackingUnavailable, TrainingDiverged
    from kerascv_suite.training.runner import check_backend

    backend = options.get("backend")
    if backend is not None:
        # Keras reads KERAS_BACKEND once, at import; nothing has imported it yet.
        try:
            check_backend(backend)
        except RuntimeError as e:
            raise click.BadParameter(str(e), param_hint="--backend") from e
    config = resolve_config(task_name, config_path, resume, options)
    check_data(config.data, config.task)
    from kerascv_suite import tasks
    from kerascv_suite.training import runner

    try:
        return runner.run(tasks.get_task(config.task), config, resume=resume is not None,
                          log=click.echo)
    except (TrackingUnavailable, TrainingDiverged, FileExistsError) as e:
        raise click.ClickException(str(e)) from e


def make_train_command(name, task_name, help_text):
    def callback(config_path, resume, **options):
        echo_result(run_training(task_name, config_path, resume, options))

    return click.Command(name, callback=callback, help=help_text, params=list(OPTIONS))


train_command = make_train_command("train", None, """Train any model: a classifier, detector,
    segmenter or keypoint model (the model's task decides the data, loss and metrics), with
    checkpoints every epoch, --resume after a crash, MLflow tracking and a test-set report.

    \b
    Examples:
      kcv train --model lenet5
      kcv train --model resnet18 --data ./flowers --image-size 96 --epochs 20
      kcv train --model resnet50 --data ./cats --weights models:/imagenet@champion \\
                --freeze backbone
      kcv train --model faster_rcnn --epochs 1      # a detector on the shapes set
      kcv train --model ssd300 --recipe none        # the paper's SSD300, no CPU recipe
      kcv train --model unet --data ./scans --format masks
      kcv train --resume            # continue the latest interrupted run
    """)
train_detector_command = make_train_command("train-detector", "detection", """Train an
    object detector (an alias of `kcv train` for detectors; default faster_rcnn on the
    built-in shapes): per-epoch validation AP to MLflow; test COCO and VOC metrics, PR
    curves, a confusion matrix and drawn detections in the report; the logged model is a
    detector (decode + NMS inside).

    \b
    Examples:
      kcv train-detector --model yolo_v1_tiny --image-size 128 --epochs 30
      kcv train-detector --model ssd300 --data ./VOC2007 --format voc --register voc-ssd
      kcv train-detector --resume          # continue the latest interrupted run
    """)
train_segmenter_command = make_train_command("train-segmenter", "segmentation", """Train a
    segmentation model (an alias of `kcv train` for segmenters; default unet on the built-in
    shapes): per-epoch validation mIoU, pixel accuracy and per-class IoU to MLflow;
    test-split overlays in the report.

    \b
    Examples:
      kcv train-segmenter --model unet --width 0.25 --image-size 64 --epochs 10
      kcv train-segmenter --model fcn8s --data ./VOC2012 --format voc --loss ce+dice
      kcv train-segmenter --resume          # continue the latest interrupted run
    """)
train_keypoints_command = make_train_command("train-keypoints", "keypoints", """Train a
    keypoint heatmap model (an alias of `kcv train` for keypoint models; default the
    Stacked Hourglass on the shapes set's polygon corners): per-epoch validation PCK to
    MLflow, test PCK and drawn predictions in the report.

    \b
    Examples:
      kcv train-keypoints                      # hourglass on shapes, the default recipe
      kcv train-keypoints --epochs 5 --image-size 32
      kcv train-keypoints --resume             # continue the latest interrupted run
    """)

COMMANDS = (train_command, train_detector_command, train_segmenter_command,
            train_keypoints_command)
