"""`kcv data make|convert|check`: build, convert and inspect datasets on disk.

Only click is imported here; the data layer loads inside each command.
"""

import click

FORMAT_NAMES = ["folders", "voc", "coco", "yolo", "masks"]


def _fail_on_data_error(error):
    """A data-layer error as the one-line error every command shows (exit status 2)."""
    from kerascv_suite.apps.errors import to_click_error

    raise to_click_error(error) from error


@click.group("data")
def data_group():
    """Make, convert and check datasets (VOC, COCO, YOLO, mask folders, class folders)."""


@data_group.group("make")
def make_group():
    """Write a built-in dataset (no download) to disk in any format."""


@make_group.command("shapes")
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--format", "fmt", type=click.Choice(FORMAT_NAMES), default="coco",
              show_default=True, help="On-disk format.")
@click.option("--num-images", type=click.IntRange(min=1), default=200, show_default=True,
              help="Training images; validation gets a fifth as many (at least 1).")
@click.option("--image-size", type=click.IntRange(min=16), default=64, show_default=True)
@click.option("--num-classes", type=click.IntRange(1, 3), default=3, show_default=True,
              help="1..3 of circle, square, triangle.")
@click.option("--max-objects", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def make_shapes_command(out, fmt, num_images, image_size, num_classes, max_objects, seed):
    """Synthetic shapes scenes (boxes, masks, keypoints) into OUT, splits train and val."""
    from kerascv_suite.data import make_shapes, write_dataset

    for split, count in (("train", num_images), ("val", max(1, num_images // 5))):
        ds = make_shapes(count=count, image_size=image_size, num_classes=num_classes,
                         max_objects=max_objects, seed=seed, split=split)
        written = write_dataset(ds, out, fmt, split)
        click.echo(f"{split}: {written} {'crops' if fmt == 'folders' else 'images'} -> {out}")


@make_group.command("digits")
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--format", "fmt", type=click.Choice(["folders"]), default="folders",
              show_default=True, help="Class folders (digits are classification only).")
@click.option("--classes", default=None, metavar="DIGITS",
              help="Keep only these digits, e.g. 0-4 or 6,7,8,9 (transfer learning: a source "
                   "task on some digits, a target task on the others) [all ten].")
@click.option("--train-count", type=click.IntRange(min=1), default=None,
              help="Keep this many training images, class-balanced and seeded (smaller "
                   "counts are subsets of larger ones); val and test keep every image of "
                   "the kept digits [all].")
def make_digits_command(out, fmt, classes, train_count):
    """scikit-learn's 1797 digits as 32x32 grayscale PNGs in OUT/{train,val,test}/<digit>/."""
    from kerascv_suite.data import load_digits, write_dataset
    from kerascv_suite.data.builtin.digits import parse_digit_classes

    try:
        digits = parse_digit_classes(classes) if classes is not None else None
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--classes") from error
    if train_count is not None and train_count < len(digits or range(10)):
        raise click.BadParameter(f"keep at least one image per digit: {len(digits or range(10))} "
                                 f"or more. Received: --train-count {train_count}",
                                 param_hint="--train-count")
    for split in ("train", "val", "test"):
        count = train_count if split == "train" else None
        written = write_dataset(load_digits(split, digits, count), out, fmt, split)
        click.echo(f"{split}: {written} images -> {out}")


@data_group.command("convert")
@click.argument("src", type=click.Path(exists=True))
@click.argument("dst", type=click.Path())
@click.option("--from", "src_format", type=click.Choice(FORMAT_NAMES), required=True)
@click.option("--to", "dst_format", type=click.Choice(FORMAT_NAMES), required=True)
@click.option("--split", "splits", multiple=True, help="Only these splits (repeatable).")
@click.option("--unknown-class", type=click.Choice(["error", "skip"]), default="error",
              show_default=True, help="Objects whose class is not in the class list.")
def convert_command(src, dst, src_format, dst_format, splits, unknown_class):
    """Convert the dataset at SRC into DST (every split unless --split is given)."""
    from kerascv_suite.data import DataError, convert

    read_kwargs = {}
    if src_format in ("voc", "coco", "yolo"):
        read_kwargs["unknown_class_policy"] = unknown_class
    try:
        results = convert(src, src_format, dst, dst_format, splits=splits or None,
                          read_kwargs=read_kwargs)
    except (DataError, ValueError) as error:
        _fail_on_data_error(error)
    for split, (ds, written) in results.items():
        click.echo(f"{split or '-'}: read {len(ds)}, wrote {written}")
        if ds.skipped:
            click.echo(ds.skipped.report())


@data_group.command("check")
@click.argument("path", type=click.Path(exists=True))
@click.option("--format", "fmt", type=click.Choice(FORMAT_NAMES), required=True)
@click.option("--split", default=None, help="Split to check (default: all found).")
@click.option("--strict", is_flag=True, help="Exit with status 1 if anything was skipped.")
def check_command(path, fmt, split, strict):
    """Decode every sample at PATH; print counts per class and the skip report."""
    import collections

    from kerascv_suite.data import DataError, list_splits, read_dataset

    try:
        splits = [split] if split else list_splits(path, fmt)
    except (DataError, ValueError, OSError) as error:
        _fail_on_data_error(error)
    if not splits:
        raise click.BadParameter(f"no splits found in {path!r} for format {fmt!r}",
                                 param_hint="PATH")
    any_skipped = False
    for name in splits:
        try:
            ds = read_dataset(path, fmt, name)
        except (DataError, ValueError) as error:
            _fail_on_data_error(error)
        counts = collections.Counter()
        loaded = 0
        for sample in ds:
            loaded += 1
            if "label" in sample:
                counts[ds.class_names[sample["label"]]] += 1
            for class_id in sample.get("classes", ()):
                counts[ds.class_names[int(class_id)]] += 1
        click.echo(f"split {name or '-'}: {loaded} samples ({len(ds)} entries), "
                   f"task {', '.join(sorted(ds.task))}, {ds.num_classes} classes")
        for class_name in ds.class_names:
            click.echo(f"  {class_name:<20} {counts[class_name]:8d}")
        click.echo("skipped / repaired:")
        click.echo("  " + ds.skipped.report().replace("\n", "\n  "))
        any_skipped |= bool(ds.skipped)
    if strict and any_skipped:
        raise SystemExit(1)


COMMANDS = (data_group,)
