"""Format-independent entry points: `read_dataset`, `write_dataset`, `convert`, `list_splits`."""

from pathlib import Path

from kerascv_suite.data.errors import DataError
from kerascv_suite.data.formats.coco import read_coco, write_coco
from kerascv_suite.data.formats.folders import read_folders, write_folders
from kerascv_suite.data.formats.masks import read_mask_folder, write_mask_folder
from kerascv_suite.data.formats.voc import read_voc, write_voc
from kerascv_suite.data.formats.yolo import find_yaml, load_yaml, read_yolo, write_yolo

FORMATS = ("folders", "voc", "coco", "yolo", "masks")

_READERS = {"folders": read_folders, "voc": read_voc, "coco": read_coco, "yolo": read_yolo,
            "masks": read_mask_folder}
_WRITERS = {"folders": write_folders, "voc": write_voc, "coco": write_coco, "yolo": write_yolo,
            "masks": write_mask_folder}


def _check_format(name):
    if name not in FORMATS:
        raise ValueError(f"Unknown dataset format {name!r}; expected one of {FORMATS}")


def read_dataset(path, format, split=None, **kwargs):
    """Reads `path` in `format` ("folders", "voc", "coco", "yolo", "masks").

    `split` None means: no split folder for "folders"/"masks", "train" for the others.
    Extra keyword arguments go to the format's reader (`read_voc`, `read_coco`, ...).
    """
    _check_format(format)
    if split is None and format in ("voc", "coco", "yolo"):
        split = "train"
    return _READERS[format](path, split, **kwargs)


def write_dataset(ds, out, format, split=None, **kwargs):
    """Writes any `Dataset` in `format`; returns the number of images (or crops) written.

    Keys a format cannot hold are left out: VOC and YOLO have no keypoints, COCO
    writes masks from `instance_masks` only, "masks" writes only the semantic masks,
    "folders" writes classification samples whole and detection samples as crops.
    """
    _check_format(format)
    if split is None and format in ("voc", "coco", "yolo"):
        split = "train"
    return _WRITERS[format](ds, out, split, **kwargs)


def list_splits(path, format):
    """The splits found at `path` (`[None]` for a split-less folder dataset)."""
    _check_format(format)
    root = Path(path)
    if format == "voc":
        names = set()
        for kind in ("Main", "Segmentation"):
            folder = root / "ImageSets" / kind
            if folder.is_dir():
                # Main/ also holds per-class lists (`dog_train.txt`); those are not splits.
                names |= {p.stem for p in folder.glob("*.txt") if "_" not in p.stem}
        return sorted(names)
    if format == "coco":
        if root.is_file():
            return [None]
        return sorted(p.stem[len("instances_"):]
                      for p in (root / "annotations").glob("instances_*.json"))
    if format == "yolo":
        config = load_yaml(find_yaml(root)) or {}
        return [s for s in ("train", "val", "test") if isinstance(config, dict) and config.get(s)]
    if format == "masks":
        images = root / "images"
        subdirs = sorted(p.name for p in images.iterdir() if p.is_dir()) if images.is_dir() else []
        return subdirs if subdirs and (root / "masks" / subdirs[0]).is_dir() else [None]
    known = {"train", "val", "valid", "validation", "test"}
    subdirs = {p.name for p in root.iterdir() if p.is_dir()} if root.is_dir() else set()
    return sorted(subdirs & known) or [None]


def convert(src, src_format, dst, dst_format, splits=None, read_kwargs=None,
            write_kwargs=None):
    """Converts every split (or the given `splits`) of a dataset to another format.

    Returns:
        `{split: (dataset_read, number_written)}`, so the caller can report each
        dataset's `skipped` log.
    """
    _check_format(src_format)
    _check_format(dst_format)
    splits = list(splits) if splits else list_splits(src, src_format)
    if not splits:
        raise DataError(f"No splits found in {src} (format {src_format})")
    results = {}
    for split in splits:
        ds = read_dataset(src, src_format, split, **(read_kwargs or {}))
        written = write_dataset(ds, dst, dst_format, split, **(write_kwargs or {}))
        results[split] = (ds, written)
    return results
