"""`kcv weights list|download|convert`: pretrained weights by name (kerascv_suite.weights)."""

import json

import click

from kerascv_suite.apps.options import SHAPE, format_option


def metric_text(metric) -> str:
    """`"top-1 69.76 / top-5 89.08 (ImageNet-1K)"` (classifiers) or `"box AP 25.1 (COCO
    val2017)"` (detectors) from an entry's published metric."""
    if "box_ap" in metric:
        return f"box AP {metric['box_ap']:g} ({metric['dataset']})"
    return f"top-1 {metric['top1']:g} / top-5 {metric['top5']:g} ({metric['dataset']})"


def entry_for(name):
    """The catalog entry `name`, or the default entry of registry model `name`."""
    from kerascv_suite import weights

    names = {e.name for e in weights.list_entries()}
    if name in names:
        return weights.get_entry(name)
    if name in {e.model for e in weights.list_entries()}:
        return weights.default_entry(name)
    return weights.get_entry(name)  # raises with close matches


@click.group("weights")
def weights_group():
    """Pretrained weights: the catalog, downloads into the Keras cache, torchvision conversion.

    Models load them by name: `build(MODEL, weights="imagenet")` or `--weights imagenet`.
    Set KCV_WEIGHTS_BASE_URL to download from a mirror and KCV_WEIGHTS_CACHE to move the cache.
    """


@weights_group.command("list")
@click.argument("pattern", required=False)
@format_option
def list_command(pattern, output_format):
    """List catalog entries (optionally matching a glob PATTERN on the entry or model name):
    model, source, size, published metric, and whether the file is in the local cache.

    \b
    Examples:
      kcv weights list
      kcv weights list "resnet*" --format json
    """
    from kerascv_suite import weights

    entries = weights.list_entries(pattern)
    if not entries:
        raise click.UsageError(f"No weights match {pattern!r}; `kcv weights list` shows all.")
    rows = [
        {"name": e.name, "model": e.model, "default": e.default, "source": e.source,
         "size_mb": e.size_mb, "metric": e.metric, "license": e.license, "url": e.url,
         "cached": weights.is_cached(e)}
        for e in entries
    ]
    if output_format == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    width = max(len(e.name) for e in entries)
    model_width = max(len(e.model) for e in entries)
    click.echo(f"{'name':<{width}}  {'model':<{model_width}}  {'source':<18}  {'size':>9}  "
               f"{'cached':<6}  published metric")
    for entry, row in zip(entries, rows):
        name = entry.name + ("*" if entry.default else "")
        click.echo(f"{name:<{width}}  {entry.model:<{model_width}}  {entry.source:<18}  "
                   f"{entry.size_mb:>6g} MB  {'yes' if row['cached'] else 'no':<6}  "
                   f"{metric_text(entry.metric)}")
    click.echo("* the model's default (weights=\"imagenet\")")


@weights_group.command("download")
@click.argument("name")
def download_command(name):
    """Download NAME (a catalog entry, or a model for its default entry) into the cache,
    verify its hash and convert it once (torchvision entries); prints the loadable file.

    \b
    Examples:
      kcv weights download resnet18
      kcv weights download squeezenet1_1.tv_in1k
    """
    from kerascv_suite import models
    from kerascv_suite.models.weights import pretrained_weights_file

    entry = entry_for(name)
    path = pretrained_weights_file(models.get_spec(entry.model), entry)
    click.echo(f"{entry.name}: {path}")


@weights_group.command("convert")
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False))
@click.option("--model", "model_name", required=True, help="Registry model the file fits.")
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="Keras weights file to write (must end in .weights.h5).")
@click.option("--num-classes", type=click.IntRange(min=1), default=None,
              help="Classes of the checkpoint's head (default: the catalog entry's, 1000).")
@click.option("--input-shape", type=SHAPE, default=None,
              help="H,W,C to build the model at (default: the catalog entry's, 224,224,3).")
def convert_command(checkpoint, model_name, out, num_classes, input_shape):
    """Convert a torchvision state dict CHECKPOINT (.pth) you already have into OUT, offline.

    OUT loads into `build(MODEL, preprocessing="torch", ...)` with the same classes and input
    size (`--weights OUT` in the training commands).

    \b
    Examples:
      kcv weights convert resnet18-f37072fd.pth --model resnet18 --out resnet18.weights.h5
    """
    if not out.endswith(".weights.h5"):
        raise click.BadParameter(f"must end in .weights.h5. Received: {out!r}",
                                 param_hint="--out")
    from kerascv_suite import models
    from kerascv_suite.models.weights import convert_checkpoint

    overrides = {k: v for k, v in (("num_classes", num_classes), ("input_shape", input_shape))
                 if v is not None}
    try:
        spec = models.get_spec(model_name)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--model") from e
    model = convert_checkpoint(spec, checkpoint, **overrides)
    model.save_weights(out)
    click.echo(f"{checkpoint} -> {out} ({model.count_params():,} parameters of {model_name})")


COMMANDS = (weights_group,)
