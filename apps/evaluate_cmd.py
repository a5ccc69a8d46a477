"""`kcv evaluate`: accuracy, top-5, per-class P/R/F1 and a confusion matrix of classifiers;
the 12 COCO statistics, VOC mAP@0.5 and PR curves of detectors; mIoU, pixel accuracy and
per-class IoU of segmenters. Each is its task's one evaluation path, the code that scores the
test split at the end of training."""

import json

import click

BACKENDS = ("tensorflow", "jax", "torch")


@click.command("evaluate")
@click.option("--model", "models", multiple=True, required=True,
              help="Registry name, .keras file or models:/NAME@ALIAS; repeat for an ensemble "
                   "(softmax outputs averaged).")
@click.option("--data", default=None,
              help="Classifiers: 'digits' (built in) or a folder of class folders [digits]. "
                   "Detectors and segmenters: 'shapes' (built in) or a VOC / COCO / YOLO / "
                   "masks dataset [shapes].")
@click.option("--data-format", type=click.Choice(["voc", "coco", "yolo", "masks"]),
              default=None, help="Detectors and segmenters: format of the --data folder "
                                 "[detected].")
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
@click.option("--score-threshold", type=click.FloatRange(0, 1, max_open=True), default=None,
              help="Detectors: minimum score [the model's; mAP wants it low].")
@click.option("--iou-threshold", type=click.FloatRange(0, 1, min_open=True), default=None,
              help="Detectors: NMS IoU [the model's].")
@click.option("--max-detections", type=click.IntRange(min=1), default=None,
              help="Detectors: detections per image [the model's].")
@click.option("--shapes-count", type=click.IntRange(min=1), default=None,
              help="Detectors: images in the built-in shapes split [160, as kcv "
                   "train-detector's].")
@click.option("--unknown-class", type=click.Choice(("error", "skip")), default="error",
              show_default=True,
              help="Detectors and segmenters: objects whose class is not in the data's class "
                   "list stop the evaluation naming the file and entry, or are skipped and "
                   "counted.")
@click.option("--backend", type=click.Choice(BACKENDS), default=None,
              help="Keras backend (sets KERAS_BACKEND before Keras is imported).")
def evaluate_command(models, data, data_format, split, tta, batch_size, image_size, out,
                     output_format, score_threshold, iou_threshold, max_detections,
                     shapes_count, unknown_class, backend):
    """Evaluate one classifier, or an ensemble of several, on a labelled split; or one
    detector (COCO's 12 statistics, VOC07 and VOC10+ mAP@0.5, PR curves per class).

    \b
    Examples:
      kcv evaluate --model models:/lenet5-digits@champion
      kcv evaluate --model runs/train/lenet5/checkpoints/best.keras --tta 10crop --out eval/
      kcv evaluate --model a.keras --model b.keras --data ./flowers --split val
      kcv evaluate --model models:/shapes-ssd@champion --out eval/ --format json
      kcv evaluate --model best.keras --data ./VOC2007 --data-format voc --split test
    """
    from kerascv_suite.training.runner import check_backend

    try:
        check_backend(backend)
    except RuntimeError as e:
        raise click.BadParameter(str(e), param_hint="--backend") from e
    task, model = _single_model(models)
    if task == "segmentation":
        _evaluate_segmenter(model, models[0], data or "shapes", data_format, split,
                            batch_size, output_format, shapes_count, unknown_class)
        return
    detector = model if task == "detection" else None
    detector_options = {"--data-format": data_format, "--score-threshold": score_threshold,
                        "--iou-threshold": iou_threshold, "--max-detections": max_detections,
                        "--shapes-count": shapes_count}
    if detector is not None:
        if tta:
            raise click.UsageError(f"--tta applies to classifiers; {models[0]} is a detector. "
                                   f"Received: --tta {tta}")
        _evaluate_detector(detector, models[0], data or "shapes", data_format, split,
                           batch_size, out, output_format, score_threshold, iou_threshold,
                           max_detections, shapes_count, unknown_class)
        return
    if unknown_class != "error":
        detector_options["--unknown-class"] = unknown_class
    given = [name for name, value in detector_options.items() if value is not None]
    if given:
        raise click.UsageError(f"{', '.join(given)} apply to detectors; "
                               f"{' + '.join(models)} is not one.")
    from kerascv_suite.pipelines import evaluate_classifier as pipeline

    try:
        config = pipeline.EvaluateConfig(models=list(models), data=data or "digits",
                                         split=split, tta=tta,
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


def _evaluate_segmenter(model, ref, data, data_format, split, batch_size, output_format,
                        shapes_count, unknown_class):
    from kerascv_suite.pipelines.evaluate_segmentation import evaluate_model

    try:
        report = evaluate_model(model, data, data_format, split, batch_size,
                                shapes_count=shapes_count or 160,
                                log=lambda m: click.echo(m, err=True),
                                unknown_class=unknown_class)
    except FileNotFoundError as e:
        raise click.BadParameter(str(e), param_hint="--data") from e
    except ValueError as e:
        raise click.UsageError(str(e)) from e
    report["model"] = ref
    if output_format == "json":
        click.echo(json.dumps(report, indent=2))
        return
    lines = [f"{ref} on {data}/{split} ({report['images']} images)",
             f"mIoU {report['miou']:.4f}   pixel accuracy {report['pixel_accuracy']:.4f}", ""]
    width = max(5, *(len(n) for n in report["per_class_iou"]))
    lines += [f"{name:<{width}}  IoU {iou:.4f}" for name, iou in report["per_class_iou"].items()]
    click.echo("\n".join(lines))


def _single_model(models):
    """`(task, model)` when `models` is one detector or segmenter (loaded once), else
    `(None, None)`: classifiers and ensembles go to the classification pipeline. Registry
    names are told apart by their task, without building them."""
    if len(models) != 1:
        return None, None
    from kerascv_suite.models.registry import get_spec, is_registered

    if is_registered(models[0]) and get_spec(models[0]).task == "classification":
        return None, None
    from kerascv_suite.apps.options import resolve_model
    from kerascv_suite.models.detection.inference import is_detector
    from kerascv_suite.models.metadata import describe

    model = resolve_model(models[0], "--model")
    if describe(model)["task"] == "segmentation":
        return "segmentation", model
    return ("detection", model) if is_detector(model) else (None, None)


def _evaluate_detector(model, ref, data, data_format, split, batch_size, out, output_format,
                       score_threshold, iou_threshold, max_detections, shapes_count,
                       unknown_class):
    from kerascv_suite.pipelines import evaluate_detector as pipeline

    try:
        config = pipeline.DetectorEvalConfig(
            ref, data=data, format=data_format, split=split, batch_size=batch_size, out=out,
            score_threshold=score_threshold, iou_threshold=iou_threshold,
            max_detections=max_detections, unknown_class=unknown_class,
            shapes_count=shapes_count or pipeline.SHAPES_COUNT)
        result = pipeline.run(config, model=model, log=lambda m: click.echo(m, err=True))
    except FileNotFoundError as e:
        raise click.BadParameter(str(e), param_hint="--data") from e
    except ValueError as e:
        raise click.UsageError(str(e)) from e
    report = result.as_dict()
    if output_format == "json":
        click.echo(json.dumps(report, indent=2))
        return
    click.echo(format_detector_report(report))


def format_detector_report(report):
    """A detector report (`DetectorEvalResult.as_dict()`) as a plain-text table."""
    from kerascv_suite.metrics.detection import COCO_STAT_NAMES


    def show(value):
        return "-" if value is None or value < 0 else f"{value:.4f}"

    lines = [f"{report['model']} on {report['data']}/{report['split']} "
             f"({report['images']} images)", ""]
    lines += [f"{name:<12} {show(report[name])}" for name in COCO_STAT_NAMES]
    lines += [f"{'VOC07 mAP50':<12} {show(report['VOC07_mAP50'])}",
              f"{'VOC mAP50':<12} {show(report['VOC_mAP50'])}", ""]
    if "mask" in report:  # an instance segmenter: the same 12 stats on its masks
        lines += ["masks"] + [f"{name:<12} {show(report['mask'][name])}"
                              for name in COCO_STAT_NAMES] + [""]
    width = max(5, *(len(n) for n in report["per_class"]))
    lines.append(f"{'class':<{width}}  AP@[.5:.95]  VOC07 AP50  VOC AP50")
    for name, scores in report["per_class"].items():
        lines.append(f"{name:<{width}}  {show(scores['AP']):>11}  "
                     f"{show(scores['VOC07_AP50']):>10}  {show(scores['VOC_AP50']):>8}")
    if report["pr_plots"]:
        lines += ["", f"PR curves: {', '.join(report['pr_plots'])}"]
    return "\n".join(lines)


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
