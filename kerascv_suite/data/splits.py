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
        for index in range(len(self)):
            yield self[index]

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
    """The format of the dataset folder `root` among the ones `task` reads."""
    root = Path(root)
    markers = {
        "folders": lambda: root.is_dir(),
        "masks": lambda: (root / "masks").is_dir(),
        "voc": lambda: any((root / d).is_dir() for d in ("Annotations", "JPEGImages",
                                                          "SegmentationClass")),
        "coco": lambda: (root / "annotations").is_dir() or root.suffix == ".json",
        "yolo": lambda: (root / "labels").is_dir() or (root / "data.yaml").is_file(),
    }
    formats = TASK_FORMATS[task]
    for fmt in formats:
        if markers[fmt]():
            return fmt
    raise ValueError(f"Cannot tell the format of {root}; pass --format "
                     f"({', '.join(formats)}). Received: data={str(root)!r}")


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
    """`data` as a Path, or an error naming the built-in set and the folder."""
    root = Path(data)
    if not root.exists():
        raise FileNotFoundError(f"--data must be {builtin!r} (built in) or a dataset folder. "
                                f"Received: data={str(data)!r}")
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
