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
@click.option("--raw", is_flag=True,
              help="Detectors: export the YOLO v1 / SSD head as it is (no decoding, no NMS).")
@click.option("--argmax", is_flag=True,
              help="Segmenters: export the class map (batch, H, W) instead of probabilities.")
@click.option("--score-threshold", type=click.FloatRange(0, 1, max_open=True), default=None,
              help="Detectors: minimum score baked into the export [the model's].")
@click.option("--iou-threshold", type=click.FloatRange(0, 1, min_open=True), default=None,
              help="Detectors: NMS IoU baked into the export [the model's].")
@click.option("--max-detections", type=click.IntRange(min=1), default=None,
              help="Detectors: detections per image [the model's].")
@click.option("--quantize", type=click.Choice(("float16", "int8")), default=None,
              help="TFLite only: post-training quantization; int8 is calibrated on --data. "
                   "Inputs and outputs stay float32 (the same contract) [float32].")
@click.option("--data", default=None,
              help="--quantize int8: images to calibrate on: a folder, 'shapes' or 'digits' "
                   "[the built-in set the model's recipe trained on].")
@click.option("--calibration-images", type=click.IntRange(min=1), default=64,
              show_default=True, help="--quantize int8: images calibrated on.")
@click.option("--overwrite", is_flag=True, help="Replace an existing export at --out.")
@click.option("--verify/--no-verify", default=True, show_default=True,
              help="Reload the export with its runtime and compare it with the Keras model "
                   "on random images.")
@click.option("--atol", type=click.FloatRange(min=0), default=1e-4, show_default=True,
              help="Largest absolute output (detectors: score) difference --verify accepts.")
def export_command(model, export_format, out, input_shape, num_classes, raw, argmax,
                   score_threshold, iou_threshold, max_detections, quantize, data,
                   calibration_images, overwrite, verify, atol):
    """Export MODEL for deployment; the export carries the model's metadata (class names,
    input size, task, decoder settings).

    Detectors of every family export as detectors: the graph takes RGB images
    (batch, H, W, 3) in 0..255 and returns boxes (batch, N, 4) xyxy in input pixels, scores,
    classes and num_detections, with preprocessing, decoding and NMS inside. Fast R-CNN and
    R-CNN exports take proposals (batch, P, 4) xyxy pixels as a second input: selective
    search stays outside the graph, as in the papers (`kcv detect` runs it). Mask R-CNN
    exports also return masks (batch, N, H, W) in [0, 1], each detection's mask in input
    pixels (`kcv detect` on the export writes masks/*.png and COCO RLE). Other models
    take the same images and return their outputs. All formats need the tensorflow backend
    (the default); jax writes a SavedModel of a classifier.

    --quantize float16 stores float16 weights; --quantize int8 runs the network's layers in
    int8, calibrated on --data (decoding, scores and NMS stay float32). Their detections
    differ from the float32 model's: --verify reports the difference without failing
    (benchmarks/export_inference.py measures their AP).

    \b
    Examples:
      kcv export --model runs/detect/ssd/checkpoints/best.keras --format onnx --out ssd.onnx
      kcv export --model ssd300 --format tflite --out ssd.tflite --score-threshold 0.3
      kcv export --model models:/lenet5-digits@champion --format tflite --out lenet5.tflite
      kcv export --model unet_shapes --format onnx --argmax --out unet.onnx
      kcv export --model ssd300_shapes --format tflite --quantize int8 --out ssd_int8.tflite
    """
    from kerascv_suite.apps.errors import InputError, one_line
    from kerascv_suite.export import export_model, verify_export

    keras_model = resolve_model(model, "--model", input_shape, num_classes)
    settings = {k: v for k, v in (("score_threshold", score_threshold),
                                  ("iou_threshold", iou_threshold),
                                  ("max_detections", max_detections)) if v is not None}
    try:
        path = export_model(keras_model, out, export_format, overwrite=overwrite, raw=raw,
                            argmax=argmax, quantize=quantize, data=data,
                            calibration_images=calibration_images, **settings)
    except FileExistsError as e:
        raise click.BadParameter(f"{e} (use --overwrite). Received: --out {out}",
                                 param_hint="--out") from e
    except ValueError as e:
        raise InputError(one_line(e)) from e
    kind = f"{export_format}, {quantize}" if quantize else export_format
    click.echo(f"Exported {model} ({kind}) to {path}")
    if not verify:
        return
    check = verify_export(keras_model, path, export_format, atol=atol,
                          **({} if raw else settings))
    message = (f"max |export - keras| = {check.max_abs_diff:.3g} on {check.batch_size} "
               f"random images (atol {atol:g})")
    if check.min_iou < 1.0 or check.mismatched:
        message += f", min box IoU {check.min_iou:.4f}, {check.mismatched} unmatched"
    if check.min_mask_iou < 1.0:
        message += f", min mask IoU {check.min_mask_iou:.4f}"
    if quantize:
        click.echo(f"Compared ({quantize}, not held to --atol): {message}")
        return
    if not check.ok(atol):
        raise click.ClickException(f"The export does not match the model: {message}")
    click.echo(f"Verified: {message}")


COMMANDS = (export_command,)
