"""Plain image + mask folders: `images[/split]/<stem>.*` and `masks[/split]/<stem>.png`.

Images and masks are matched by file stem. Masks are palette or grayscale PNGs whose
values are class ids (255 = ignore). Class names come from `labels.txt` (index = mask
value); when its first name is "background" the dataset uses the background
convention (`class_names` without it, mask value `c + 1` = class c), otherwise mask
value = class id. Without a `labels.txt` or `class_names`, every mask is read once to
find the largest id and classes are named `class_0..class_K`.
"""

import os
from pathlib import Path

import numpy as np

from kerascv_suite.data.dataset import RecordDataset
from kerascv_suite.data.errors import BadImageError, DataError
from kerascv_suite.data.formats.common import (LABELS_FILE, StemAllocator, list_images, probe,
                                               read_labels, split_background, write_labels)
from kerascv_suite.data.image_io import DEFAULT_MAX_PIXELS, read_mask, write_image, write_mask


def read_mask_folder(root, split=None, *, class_names=None, check_images=True,
                     max_pixels=DEFAULT_MAX_PIXELS, allow_truncated=False):
    """Reads matched image/mask pairs as a segmentation dataset.

    An image without a mask and a mask without an image are counted skips, as are two
    images sharing a stem (ambiguous: both are skipped). Mask values outside the class
    range become 255 when read (counted).

    Args:
        root: the folder with `images/` and `masks/`.
        split: optional sub-folder of both.
        class_names: names by mask value (a leading "background" switches on the
            background convention); default `labels.txt` or inferred.
    """
    root = Path(root)
    image_dir = root / "images" / split if split else root / "images"
    mask_dir = root / "masks" / split if split else root / "masks"
    for folder in (image_dir, mask_dir):
        if not folder.is_dir():
            raise DataError(f"Mask-folder dataset needs {folder}")
    dataset = RecordDataset([], [], "segmentation", max_pixels=max_pixels,
                            allow_truncated=allow_truncated, root=root)
    skipped = dataset.skipped
    by_stem = {}
    for path in list_images(image_dir):
        by_stem.setdefault(path.relative_to(image_dir).with_suffix("").as_posix(), []).append(path)
    for stem, paths in by_stem.items():
        if len(paths) > 1:
            for path in paths:
                skipped.add(path, None, "duplicate image stem")
            continue
        mask_path = mask_dir / f"{stem}.png"
        if not mask_path.exists():
            skipped.add(paths[0], None, "missing mask")
            continue
        if check_images and probe(paths[0], source=paths[0], entry=None, skipped=skipped,
                                  max_pixels=max_pixels,
                                  allow_truncated=allow_truncated) is None:
            continue
        dataset.records.append({"path": str(paths[0]), "mask_path": str(mask_path)})
    image_stems = set(by_stem)
    for path in sorted(mask_dir.rglob("*.png")):
        if path.relative_to(mask_dir).with_suffix("").as_posix() not in image_stems:
            skipped.add(path, None, "mask without image")
    if class_names is None:
        labels = root / LABELS_FILE
        class_names = read_labels(labels) if labels.exists() else _infer(dataset)
    dataset.has_background, dataset.class_names = split_background(list(class_names))
    return dataset


def _infer(dataset):
    largest = 0
    for record in dataset.records:
        try:
            values = np.unique(read_mask(record["mask_path"], max_pixels=dataset.max_pixels))
        except BadImageError:
            continue  # counted when the sample is read
        values = values[values != 255]
        if values.size:
            largest = max(largest, int(values.max()))
    return [f"class_{i}" for i in range(largest + 1)]


def write_mask_folder(ds, out, split=None, *, image_ext=".png"):
    """Writes `images[/split]/<stem><ext>`, `masks[/split]/<stem>.png` and `labels.txt`.

    `labels.txt` lists the mask value names (`ds.mask_class_names`), so a background
    dataset reads back with the same class ids. Samples without a mask are left out.

    Returns:
        The number of pairs written.
    """
    if "segmentation" not in ds.task:
        raise DataError(f"format 'masks' needs a segmentation dataset; this one provides "
                        f"{sorted(ds.task)}")
    out = Path(out)
    image_dir = out / "images" / split if split else out / "images"
    mask_dir = out / "masks" / split if split else out / "masks"
    write_labels(str(out / LABELS_FILE), ds.mask_class_names)
    stems = StemAllocator()
    written = 0
    for index, sample in enumerate(ds):
        if "mask" not in sample:
            continue
        stem = stems(sample, index)
        write_image(image_dir / f"{stem}{image_ext}", sample["image"])
        write_mask(mask_dir / f"{stem}.png", sample["mask"])
        written += 1
    os.makedirs(image_dir, exist_ok=True)
    os.makedirs(mask_dir, exist_ok=True)
    return written
