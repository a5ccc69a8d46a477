"""Image folders: `root/<class name>/<image>` (classification), one folder per class.

Class ids follow the sorted folder names, as in `keras.utils.image_dataset_from_directory`
and torchvision's `ImageFolder`. Files with non-image suffixes are ignored and counted.
"""

import os
from pathlib import Path

import numpy as np

from kerascv_suite.data.dataset import RecordDataset
from kerascv_suite.data.errors import DataError
from kerascv_suite.data.formats.common import StemAllocator, list_images, probe
from kerascv_suite.data.image_io import DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS, write_image


def read_folders(root, split=None, *, class_names=None, channels=3, check_images=True,
                 max_pixels=DEFAULT_MAX_PIXELS, allow_truncated=False):
    """Reads `root[/split]/<class>/*` as a classification dataset.

    Args:
        root: the dataset folder.
        split: optional sub-folder ("train", "val", ...).
        class_names: fixes the class order (and which folders count); default: the
            sorted sub-folder names. A listed class without a folder has no samples.
        channels: 3 (RGB) or 1 (grayscale) images.
        check_images: read every image header now, so bad files are skipped up front.
        max_pixels, allow_truncated: see `decode_image`.

    Returns:
        A `Dataset` with task "classification"; samples carry `"label"`.
    """
    folder = Path(root) / split if split else Path(root)
    if not folder.is_dir():
        raise DataError(f"Image folder {folder} does not exist; classification reads "
                        "--data DIR with DIR/<class name>/<image> (or DIR/train/<class "
                        "name>/<image> and DIR/val/...)")
    if class_names is None:
        class_names = sorted(p.name for p in folder.iterdir()
                             if p.is_dir() and not p.name.startswith("."))
    if not class_names:
        raise DataError(f"{folder} has no class sub-folders; classification reads "
                        f"{folder}/<class name>/<image>, one folder per class (`kcv data "
                        "make digits DIR` writes an example)")
    dataset = RecordDataset([], class_names, "classification", channels=channels,
                            max_pixels=max_pixels, allow_truncated=allow_truncated, root=folder)
    for label, name in enumerate(class_names):
        class_dir = folder / name
        if not class_dir.is_dir():
            continue
        for path in sorted(p for p in class_dir.rglob("*") if p.is_file()):
            if path.name.startswith("."):
                continue
            if path.suffix.lower() not in IMAGE_EXTENSIONS:
                dataset.skipped.add(path, None, "not an image file (suffix)")
                continue
            if check_images and probe(path, source=path, entry=None, skipped=dataset.skipped,
                                      max_pixels=max_pixels,
                                      allow_truncated=allow_truncated) is None:
                continue
            dataset.records.append({"path": str(path), "label": label})
    return dataset


def write_folders(ds, out, split=None, *, image_ext=".png", min_crop=2):
    """Writes a dataset as class folders.

    Classification samples are written whole to `out[/split]/<class>/<stem><ext>`.
    Detection samples (no `"label"`) are written as one crop per box, so a detection
    dataset becomes a classification dataset of its objects (boxes smaller than
    `min_crop` pixels on a side are left out).

    Returns:
        The number of image files written.
    """
    folder = Path(out) / split if split else Path(out)
    stems = StemAllocator()
    written = 0
    for index, sample in enumerate(ds):
        stem = stems(sample, index)
        if "label" in sample:
            name = ds.class_names[int(sample["label"])]
            write_image(folder / name / f"{stem}{image_ext}", sample["image"])
            written += 1
            continue
        image = sample["image"]
        for k, (box, class_id) in enumerate(zip(sample.get("boxes", ()),
                                                sample.get("classes", ()))):
            x0, y0 = np.floor(box[:2]).astype(int)
            x1, y1 = np.ceil(box[2:]).astype(int)
            if x1 - x0 < min_crop or y1 - y0 < min_crop:
                continue
            name = ds.class_names[int(class_id)]
            write_image(folder / name / f"{stem}_{k}{image_ext}", image[y0:y1, x0:x1])
            written += 1
    # Empty classes still get a folder, so reading back gives the same class ids.
    for name in ds.class_names:
        os.makedirs(folder / name, exist_ok=True)
    return written
