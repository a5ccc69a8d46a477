"""`kcv segment FOLDER`, `kcv evaluate-segmentation GT PRED` (`kcv train-segmenter` is an
alias of `kcv train`, in train_cmd)."""

import json

import click


@click.command("segment")
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.option("--model", required=True,
              help="Registry name, .keras file, models:/NAME@ALIAS, or an export (.onnx, "
                   ".tflite, SavedModel folder from kcv export) run with its runtime.")
@click.option("--out", default="segmented", show_default=True, help="Output folder.")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True,
              help="Model inputs (images, or tiles) per predict call.")
@click.option("--overwrite", is_flag=True, help="Redo images whose outputs already exist.")
@click.option("--image-size", type=click.IntRange(min=1), default=None,
              help="Input side for models without a fixed input size.")
@click.option("--class-names", default=None,
              help="Comma-separated names of the mask values (for the fractions).")
@click.option("--mode", type=click.Choice(("resize", "tile", "auto")), default="resize",
              show_default=True,
              help="resize: the whole image to the model input; tile: overlapping windows "
                   "at native resolution, probabilities averaged; auto: tile images over "
                   "twice the input size.")
@click.option("--tile-overlap", type=click.FloatRange(0, 1, max_open=True), default=0.25,
              show_default=True, help="Fraction of a tile's side shared by neighbours.")
def segment_command(folder, model, out, batch_size, overwrite, image_size, class_names, mode,
                    tile_overlap):
    """Segment every image in FOLDER: palette masks, overlays, class pixel fractions.

    \b
    Examples:
      kcv segment photos/ --model models:/shapes-unet@champion --out segmented/
      kcv segment photos/ --model runs/segment/unet/checkpoints/best.keras --overwrite
      kcv segment aerial/ --model models:/roads@champion --mode tile --tile-overlap 0.5
      kcv segment photos/ --model unet.onnx --out segmented/
    """
    from kerascv_suite.pipelines.segment_folder import SegmentConfig, run

    try:
        config = SegmentConfig(folder, model, out=out, batch_size=batch_size,
                               overwrite=overwrite, image_size=image_size,
                               class_names=class_names.split(",") if class_names else None,
                               mode=mode, tile_overlap=tile_overlap)
        result = run(config, log=click.echo)
    except (ValueError, FileNotFoundError) as e:
        raise click.UsageError(str(e)) from e
    click.echo(f"{result.written} written, {result.existing} already done, "
               f"{len(result.skipped)} skipped; {result.images_per_second:.1f} images/s.")


@click.command("evaluate-segmentation")
@click.argument("gt_masks", type=click.Path(exists=True, file_okay=False))
@click.argument("pred_masks", type=click.Path(exists=True, file_okay=False))
@click.option("--num-classes", type=click.IntRange(min=1), required=True)
@click.option("--class-names", default=None, help="Comma-separated names of the K classes.")
@click.option("--format", "output_format", type=click.Choice(["table", "json"]),
              default="table", show_default=True)
def evaluate_segmentation_command(gt_masks, pred_masks, num_classes, class_names,
                                  output_format):
    """Score predicted masks against ground-truth masks matched by file stem.

    \b
    Example:
      kcv evaluate-segmentation data/masks segmented/masks --num-classes 4 --format json
    """
    from kerascv_suite.pipelines.evaluate_segmentation import evaluate_folders

    names = class_names.split(",") if class_names else None
    if names is not None and len(names) != num_classes:
        raise click.BadParameter(f"{len(names)} names for {num_classes} classes. "
                                 f"Received: {class_names!r}", param_hint="--class-names")
    report = evaluate_folders(gt_masks, pred_masks, num_classes)
    data = report.as_dict(names)
    if output_format == "json":
        click.echo(json.dumps(data, indent=2))
    else:
        click.echo(f"matched {data['matched']} masks")
        click.echo(f"{'mIoU':<20} {data['miou']:.4f}")
        click.echo(f"{'pixel accuracy':<20} {data['pixel_accuracy']:.4f}")
        for name, iou in data["per_class_iou"].items():
            click.echo(f"{'IoU ' + name:<20} {'-' if iou is None else f'{iou:.4f}'}")
        for key in ("missing_predictions", "extra_predictions"):
            if data[key]:
                click.echo(f"{key.replace('_', ' ')} ({len(data[key])}): "
                           f"{', '.join(data[key])}")
        for item in data["mismatched"]:
            click.echo(f"mismatched {item['stem']}: {item['reason']}")
    if report.matched == 0:
        raise click.ClickException("No predicted mask matched a ground-truth mask by stem.")


COMMANDS = (segment_command, evaluate_segmentation_command)
