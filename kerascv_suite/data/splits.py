"""A dataset folder's train / val / test splits, for every task the same way.

A folder with a `train` split and a validation split (`val`, `valid` or `validation`) uses
them (test: its `test` split, else the validation split). A folder without them gets a seeded
80/10/10 split of everything it holds, as `SplitView`s.
"""

from __future__ import annotations

from pathlib import Path

VAL_NAMES = ("val", "valid", "validation")
# The formats each task reads, in the order `detect_format` tries them.
TASK_FORMATS = {
    "classification": ("folders",),
    "detection": ("voc", "coco", "yolo"),
    "segmentation": ("masks", "voc", "coco"),
    "keypoints": ("coco",),
}


class SplitView:
    """Some entries of a dataset (a seeded split of a folder without split sub-folders).

    Args:
        dataset: the whole dataset.
        indices: the entries of this split, in order (None: all of them).
    """

    def __init__(self, dataset, indices=None):
        self.dataset = dataset
        self.indices = None if indices is None else [int(i) for i in indices]
        self.class_names = dataset.class_names
        self.task = getattr(dataset, "task", None)
        self.skipped = getattr(dataset, "skipped", None)

    @property
    def mask_class_names(self):
        return self.dataset.mask_class_names

    @property
    def num_classes(self):
        return len(self.class_names)

    def __len__(self):
        return len(self.dataset) if self.indices is None else len(self.indices)

    def __getitem__(self, index):
        return self.dataset[index if self.indices is None else self.indices[index]]

    def __iter__(self):
        """The view's samples; one that cannot be decoded is skipped and recorded in the
        whole dataset's `skipped` (never replaced by another)."""
        from kerascv_suite.data.errors import BadImageError

        for index in range(len(self)):
            try:
                yield self[index]
            except BadImageError as error:
                if self.skipped is not None:
                    self.skipped.add(error.path, None, f"bad image: {error.reason}")

    def describe(self, index):
        return self.dataset.describe(index if self.indices is None else self.indices[index])


def split_indices(count, seed, fractions=(0.8, 0.1, 0.1)):
    """`(train, val, test)` index arrays of a seeded permutation of `count` entries."""
    import numpy as np

    order = np.random.default_rng(seed).permutation(count)
    n_val = max(1, round(count * fractions[1]))
    n_test = max(1, round(count * fractions[2]))
    return order[n_val + n_test:], order[:n_val], order[n_val:n_val + n_test]


def detect_format(root, task) -> str:
    """The format of the dataset folder `root` among the ones `task` reads.

    Raises:
        DataError: an empty folder, or one in none of the task's formats.
    """
    from kerascv_suite.data.errors import DataError

    root = Path(root)
    markers = {
        "folders": lambda: root.is_dir(),
        "masks": lambda: (root / "masks").is_dir(),
        "voc": lambda: any((root / d).is_dir() for d in ("Annotations", "JPEGImages",
                                                          "SegmentationClass", "ImageSets")),
        "coco": lambda: (root / "annotations").is_dir() or root.suffix == ".json",
        "yolo": lambda: (root / "labels").is_dir() or (root / "data.yaml").is_file(),
    }
    formats = TASK_FORMATS[task]
    for fmt in formats:
        if markers[fmt]():
            return fmt
    raise DataError(f"--data {root}: cannot tell its format (none of the folders or files "
                    f"of {', '.join(formats)} datasets are there); pass --format "
                    f"{'|'.join(formats)}, or point --data at the dataset's root folder")


def open_splits(root, fmt, seed, read):
    """`(train, val, test)` of the dataset folder `root`.

    Args:
        root: the folder (or COCO JSON).
        fmt: its format.
        seed: seeds the 80/10/10 split of a folder without splits.
        read: `read(split_name_or_None)` -> dataset.
    """
    from kerascv_suite.data.io import list_splits

    root = Path(root)
    splits = [s for s in list_splits(root, fmt) if s is not None]
    val_name = next((s for s in VAL_NAMES if s in splits), None)
    if "train" in splits and val_name:
        train, val = read("train"), read(val_name)
        test = read("test") if "test" in splits else val
        return train, val, test
    full = read(splits[0] if splits else None)
    train, val, test = split_indices(len(full), seed)
    return SplitView(full, train), SplitView(full, val), SplitView(full, test)


def check_folder(data, builtin):
    """`data` as a Path: an existing, non-empty dataset folder (or a COCO JSON file).

    Raises:
        DataError: a path that does not exist, an empty folder, naming the built-in set.
    """
    from kerascv_suite.data.errors import DataError

    root = Path(data)
    if not root.exists():
        raise DataError(f"--data {data}: no such file or folder; pass a dataset folder or "
                        f"{builtin!r} (the built-in set)")
    if root.is_dir() and not any(p for p in root.iterdir() if not p.name.startswith(".")):
        raise DataError(f"--data {data}: the folder is empty; put a dataset in it (`kcv data "
                        f"make {builtin} {data}` writes an example) or pass {builtin!r}")
    return root


def fit_dataset(loader, channels, y="labels"):
    """The loader's `(images, y)` tf.data pipeline with its length declared, so Keras
    shows the number of steps from the first epoch and knows when an epoch ends.

    `channels` is the model's input channel count. Data with more channels (RGB images for
    a 1-channel model) keeps the first `channels`; data with fewer is an error.
    """
    import tensorflow as tf

    ds = loader.as_tf_dataset(x="images", y=y)
    data_channels = loader.element_spec()["images"][0][-1]
    if data_channels < channels:
        raise ValueError(f"The model takes {channels}-channel images but the data has "
                         f"{data_channels}. Received: data with {data_channels} channels")
    if data_channels > channels:
        ds = ds.map(lambda images, targets: (images[..., :channels], targets))
    return ds.apply(tf.data.experimental.assert_cardinality(len(loader)))
