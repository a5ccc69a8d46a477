"""`kcv cam`: class activation map overlays (Zhou et al. 2016) for global-average-pooling nets."""

import json
import os
import time

import click

from kerascv_suite.apps.options import check_not_empty, input_shape_option, resolve_model


def _expand(paths):
    """Files as given; folders become their image files (sorted, not recursive)."""
    from kerascv_suite.data.image_io import IMAGE_EXTENSIONS

    files = []
    for path in paths:
        if os.path.isdir(path):
            names = sorted(n for n in os.listdir(path) if n.lower().endswith(IMAGE_EXTENSIONS))
            files += [os.path.join(path, n) for n in names]
        else:
            files.append(path)
    return files


def _out_name(out, path, used):
    stem = os.path.splitext(os.path.basename(path))[0]
    name, i = f"{stem}_cam.png", 1
    while name in used:  # same file name in two folders
        i += 1
        name = f"{stem}_{i}_cam.png"
    used.add(name)
    return os.path.join(out, name)


@click.command("cam")
@click.argument("images", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--model", required=True,
              help="Registry name, .keras file or models:/NAME@ALIAS with a global-average-"
                   "pooling head (ResNet, GoogLeNet, NiN, SqueezeNet).")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Folder for the <image>_cam.png overlays.")
@click.option("--class-index", type=click.IntRange(min=0), default=None,
              help="Class to explain (default: each image's top prediction).")
@input_shape_option
@click.option("--num-classes", type=click.IntRange(min=1), default=None,
              help="Output classes (registry names only).")
@click.option("--alpha", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Weight of the heatmap in the overlay.")
@click.option("--format", "output_format", type=click.Choice(["table", "json"]),
              default="table", show_default=True, help="Human-readable lines or JSON.")
def cam_command(images, model, out, class_index, input_shape, num_classes, alpha,
                output_format):
    """Write class activation map overlays of IMAGES (files or folders) to --out.

    Each image is resized to the model's input, its map of the explained class is computed
    from the last convolutional maps and the classifier weights, and the map (JET colormap,
    red = most evidence) is blended over the original image at its own size. Unreadable
    files are skipped and listed in skipped.txt, as `kcv segment` and `kcv detect` do.

    \b
    Examples:
      kcv cam --model models:/resnet-flowers@champion photos/ --out cams/
      kcv cam --model squeezenet1_1 cat.jpg --out cams/ --class-index 3
    """
    files = _expand(images)
    check_not_empty(", ".join(images), files, param_hint="IMAGES")
    from kerascv_suite.analysis.cam import explain_images
    from kerascv_suite.data.errors import BadImageError
    from kerascv_suite.data.image_io import decode_image, write_image
    from kerascv_suite.pipelines.folder_io import skip_report, write_skipped

    start = time.monotonic()
    keras_model = resolve_model(model, "--model", input_shape, num_classes)
    channels = keras_model.inputs[0].shape[-1]
    num_outputs = keras_model.outputs[0].shape[-1]
    if class_index is not None and class_index >= num_outputs:
        raise click.BadParameter(
            f"the model has {num_outputs} classes. Received: --class-index {class_index}",
            param_hint="--class-index")
    read, failed = [], []  # the paths of the images decoded, in order; (path, reason) of others

    def decoded():
        for path in files:
            try:
                image = decode_image(path, channels=1 if channels == 1 else 3)
            except BadImageError as e:
                failed.append((path, e.reason))
                continue
            read.append(path)
            yield image

    try:
        results = explain_images(keras_model, decoded(), class_index, alpha=alpha)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--model") from e
    os.makedirs(out, exist_ok=True)
    rows, used = [], set()
    for i, result in enumerate(results):  # result i is image read[i]
        path = read[i]
        target = _out_name(out, path, used)
        write_image(target, result.overlay)
        rows.append({"image": path, "overlay": target, "class_index": result.class_index,
                     "score": result.score, "top_class": result.top_class})
    if output_format == "json":
        click.echo(json.dumps(rows, indent=2))
    else:
        for r in rows:
            click.echo(f"{r['image']} -> {r['overlay']}  class {r['class_index']} "
                       f"(score {r['score']:.3f}, top class {r['top_class']})")
    write_skipped(out, failed)
    seconds = time.monotonic() - start
    if output_format != "json":
        click.echo(f"Explained {len(rows)} images in {seconds:.1f} s into "
                   f"{out}{skip_report(failed)}.")
        click.echo(f"{len(rows)} written, {len(failed)} skipped; "
                   f"{len(rows) / max(seconds, 1e-9):.1f} images/s.")
    if not rows:
        raise click.ClickException(f"No image could be read ({len(failed)} skipped, listed in "
                                   f"{os.path.join(out, 'skipped.txt')}).")


COMMANDS = (cam_command,)
