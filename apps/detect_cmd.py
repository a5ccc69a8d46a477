"""`kcv detect FOLDER`: annotated images and COCO-format detections of a folder."""

import click

from kerascv_suite.apps.evaluate_cmd import BACKENDS


@click.command("detect")
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.option("--model", required=True,
              help="Detector: registry name, .keras file, models:/NAME@ALIAS, or an export "
                   "(.onnx, .tflite, SavedModel folder from kcv export) run with its "
                   "runtime.")
@click.option("--weights", default=None,
              help="With a registry name for --model: pretrained weights by name (imagenet "
                   "= the model's default, or a catalog entry: kcv weights list), a weights "
                   "file or models:/NAME@ALIAS [random initialization].")
@click.option("--out", default="detections", show_default=True, help="Output folder.")
@click.option("--score-threshold", type=click.FloatRange(0, 1, max_open=True), default=0.25,
              show_default=True, help="Minimum detection score.")
@click.option("--iou-threshold", type=click.FloatRange(0, 1, min_open=True), default=None,
              help="NMS IoU [the model's decoder setting: YOLO v1 0.5, SSD 0.45, "
                   "Faster R-CNN 0.5, Fast R-CNN / R-CNN 0.3].")
@click.option("--max-detections", type=click.IntRange(min=1), default=None,
              help="Detections per image [the model's].")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--overwrite", is_flag=True, help="Redo images whose outputs already exist.")
@click.option("--class-names", default=None,
              help="Comma-separated class names, overriding those the model carries "
                   "[the model's, else class_<id>].")
@click.option("--resize", type=click.Choice(["stretch", "letterbox"]), default="stretch",
              show_default=True,
              help="Bring images to the input size by a plain resize (as in training) or a "
                   "letterbox that keeps the aspect ratio.")
@click.option("--backend", type=click.Choice(BACKENDS), default=None,
              help="Keras backend (sets KERAS_BACKEND before Keras is imported).")
def detect_command(folder, model, weights, out, score_threshold, iou_threshold, max_detections,
                   batch_size, overwrite, class_names, resize, backend):
    """Detect objects in every image in FOLDER: annotated images plus detections.json
    (COCO format) and results.json (COCO results list) in --out.

    Unreadable files are skipped and listed in skipped.txt; images already done are kept
    unless --overwrite.

    \b
    Examples:
      kcv detect photos/ --model models:/shapes-ssd@champion --out detected/
      kcv detect photos/ --model runs/detect/yolo/checkpoints/best.keras --score-threshold 0.4
      kcv detect photos/ --model best.keras --class-names circle,square,triangle --overwrite
      kcv detect photos/ --model ssd.onnx --out detected/
      kcv detect photos/ --model ssd300_coco --weights ssd300_coco.tv_coco --score-threshold 0.5
    """
    from kerascv_suite.training.runner import check_backend

    try:
        check_backend(backend)
    except RuntimeError as e:
        raise click.BadParameter(str(e), param_hint="--backend") from e
    from kerascv_suite import models
    from kerascv_suite.apps.options import resolve_model
    from kerascv_suite.pipelines.detect_folder import DetectConfig, run

    names = [n.strip() for n in class_names.split(",")] if class_names else None
    try:
        config = DetectConfig(folder, model, out=out, score_threshold=score_threshold,
                              iou_threshold=iou_threshold, max_detections=max_detections,
                              batch_size=batch_size, overwrite=overwrite, class_names=names,
                              resize=resize)
    except (ValueError, FileNotFoundError) as e:
        raise click.UsageError(str(e)) from e
    from kerascv_suite.export import is_export

    if weights is not None and not models.is_registered(model):
        raise click.BadParameter(
            "--weights goes with a registry name for --model (a saved model or export already "
            f"holds its weights). Received: --model {model} --weights {weights}",
            param_hint="--weights")
    if weights is None:
        detector = None if is_export(model) else resolve_model(model, "--model")
    else:
        try:  # the model with the weights' preprocessing, input size and class names
            detector = models.build(model, weights=weights)
        except (ValueError, FileNotFoundError) as e:
            raise click.BadParameter(str(e), param_hint="--weights") from e
    try:
        result = run(config, model=detector, log=click.echo)
    except ValueError as e:
        raise click.UsageError(str(e)) from e
    click.echo(f"{result.written} written, {result.existing} already done, "
               f"{len(result.skipped)} skipped; {result.num_detections} detections in "
               f"{result.out / 'detections.json'}; {result.images_per_second:.1f} images/s.")


COMMANDS = (detect_command,)
