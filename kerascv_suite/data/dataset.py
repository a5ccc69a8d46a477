"""The random-access `Dataset` every reader and built-in dataset returns.

A sample is a dict:

* `"image"`: uint8 `(height, width, 3)` RGB (the `digits` dataset, and readers asked
  for `channels=1`, give `(height, width, 1)`).
* `"path"`: str, where the image came from.
* `"label"`: int (classification).
* `"boxes"`: float32 `(num_boxes, 4)` absolute-pixel `xyxy`; `"classes"`: int32
  `(num_boxes,)` in `0..num_classes-1`.
* `"mask"`: uint8 `(height, width)` semantic class ids, 255 = ignore. Datasets with a
  background (VOC, COCO, shapes) use 0 = background and `c + 1` for class `c` (VOC's
  own convention); their `mask_class_names` is `["background", *class_names]`. Mask
  folders store ids as they are and `mask_class_names == class_names`.
* `"instance_masks"`: uint8 `(num_boxes, height, width)` 0/1, aligned with `boxes`.
* `"keypoints"`: float32 `(num_boxes, num_keypoints, 3)` as `x, y, visibility`
  (COCO visibility: 0 = not labelled, 1 = labelled but hidden, 2 = visible).
* Extras some readers add: `"difficult"` (VOC, bool), `"iscrowd"` (COCO, bool).

Skip policy: entries found bad while a reader parses the annotations and checks each
image (header, and the end of JPEG/PNG files) never become entries; they are counted in
`ds.skipped` at once. An image that only fails when its pixels are decoded makes `ds[i]`
(and `ds.load(i)`) raise `BadImageError`: it is never replaced by another sample. The
`DataLoader` skips and counts such a sample (its batch comes out smaller), and iterating
`for sample in ds` skips it and records it in `ds.skipped`.
"""

import abc

import numpy as np

from kerascv_suite.constants import TASKS
from kerascv_suite.data.errors import BadImageError, SkipLog
from kerascv_suite.data.image_io import DEFAULT_MAX_PIXELS, decode_image, read_mask
from kerascv_suite.data.rle import segmentation_to_mask


class Dataset(abc.ABC):
    """Base class: `len(ds)`, `ds[i] -> sample dict`, `class_names`, `task`, `skipped`.

    Subclasses implement `__len__` and `load(index)`.

    Attributes:
        class_names: list of str, index = class id.
        task: frozenset of what samples carry, a subset of `TASKS` (compare with `in`).
        skipped: a `SkipLog` (a `collections.Counter` of reasons with `.entries`).
        has_background: whether semantic masks use 0 = background and `c + 1` for class c.
    """

    has_background = False

    def __init__(self, class_names, task, skipped=None):
        self.class_names = list(class_names)
        self.task = frozenset([task] if isinstance(task, str) else task)
        unknown = self.task - set(TASKS)
        if unknown:
            raise ValueError(f"Unknown task(s) {sorted(unknown)}; expected some of {TASKS}")
        self.skipped = skipped if skipped is not None else SkipLog()
        self._bad = set()

    @property
    def num_classes(self):
        return len(self.class_names)

    @property
    def mask_class_names(self):
        """Names of semantic mask values (index = mask value)."""
        if self.has_background:
            return ["background", *self.class_names]
        return list(self.class_names)

    @abc.abstractmethod
    def __len__(self):
        """Number of entries (skipped-at-parse entries are not counted)."""

    @abc.abstractmethod
    def load(self, index):
        """Returns sample `index`, raising `BadImageError` if it cannot be read."""

    def describe(self, index):
        """The file behind entry `index`, for skip messages."""
        return f"{type(self).__name__}[{index}]"

    def __getitem__(self, index):
        """Sample `index`; raises `BadImageError` naming the file when it cannot be decoded
        (the caller skips and counts it: no other sample stands in for it)."""
        size = len(self)
        if isinstance(index, (np.integer,)):
            index = int(index)
        if not isinstance(index, int):
            raise TypeError(f"Dataset indices must be integers. Received: {index!r}")
        if index < 0:
            index += size
        if not 0 <= index < size:
            raise IndexError(f"index {index} out of range for a dataset of {size} samples")
        return self.load(index)

    def __iter__(self):
        for index in range(len(self)):
            if index not in self._bad:
                sample = self._try_load(index)
                if sample is not None:
                    yield sample

    def _try_load(self, index):
        try:
            return self.load(index)
        except BadImageError as error:
            self._bad.add(index)
            # The file names the entry (as the DataLoader counts it): one bad file found by
            # a training loader and an evaluation pass is one skip.
            self.skipped.add(error.path, None, f"bad image: {error.reason}")
            return None

    def __repr__(self):
        return (f"{type(self).__name__}(len={len(self)}, task={sorted(self.task)}, "
                f"num_classes={self.num_classes}, skipped={sum(self.skipped.values())})")


class RecordDataset(Dataset):
    """A dataset of parsed annotation records; images (and masks) are decoded on access.

    Each record is a dict with `"path"` (the image) and any of: `"label"`, `"boxes"`,
    `"classes"`, `"difficult"`, `"iscrowd"`, `"keypoints"`, `"mask_path"` (a class-id
    PNG), `"segments"` (COCO segmentations aligned with the boxes) with
    `"crowd_segments"` (regions set to 255 in the semantic mask) and `"size"`.
    """

    def __init__(self, records, class_names, task, *, skipped=None, has_background=False,
                 channels=3, max_pixels=DEFAULT_MAX_PIXELS, allow_truncated=False,
                 root=None):
        super().__init__(class_names, task, skipped)
        self.records = list(records)
        self.has_background = has_background
        self.channels = channels
        self.max_pixels = max_pixels
        self.allow_truncated = allow_truncated
        self.root = root

    def __len__(self):
        return len(self.records)

    def describe(self, index):
        return self.records[index]["path"]

    def load(self, index):
        record = self.records[index]
        image = decode_image(record["path"], max_pixels=self.max_pixels,
                             allow_truncated=self.allow_truncated, channels=self.channels)
        height, width = image.shape[:2]
        sample = {"image": image, "path": str(record["path"])}
        for key in ("label", "boxes", "classes", "difficult", "iscrowd", "keypoints"):
            if key in record:
                value = record[key]
                sample[key] = value.copy() if isinstance(value, np.ndarray) else value
        if "boxes" in sample:
            # The header size we validated against can differ from the decoded size
            # only through a broken file; clip again so the contract always holds.
            sample["boxes"][:, 0::2] = np.clip(sample["boxes"][:, 0::2], 0, width)
            sample["boxes"][:, 1::2] = np.clip(sample["boxes"][:, 1::2], 0, height)
        if "mask_path" in record:
            sample["mask"] = self._read_mask(record["mask_path"], (height, width), index)
        if "segments" in record:
            self._render_segments(record, sample, (height, width))
        return sample

    def _read_mask(self, path, shape, index):
        mask = read_mask(path, max_pixels=self.max_pixels)
        if mask.shape != shape:
            raise BadImageError(path, "mask size differs from image",
                                f"mask {mask.shape[1]}x{mask.shape[0]}, image "
                                f"{shape[1]}x{shape[0]}")
        limit = len(self.mask_class_names)
        invalid = (mask >= limit) & (mask != 255)
        if invalid.any() and index not in self._bad:
            self.skipped.add(path, index, "mask values out of range set to 255 (ignore)")
            mask = np.where(invalid, np.uint8(255), mask)
        return mask

    def _render_segments(self, record, sample, shape):
        height, width = shape
        if tuple(record["size"]) != shape:
            raise BadImageError(record["path"], "image size differs from annotation",
                                f"annotation {record['size'][1]}x{record['size'][0]}, image "
                                f"{width}x{height}")
        instances = np.zeros((len(record["segments"]), height, width), dtype=np.uint8)
        semantic = np.zeros((height, width), dtype=np.uint8)
        for k, (segmentation, class_id) in enumerate(zip(record["segments"], record["classes"])):
            if segmentation is None:
                continue
            instances[k] = segmentation_to_mask(segmentation, height, width)
            semantic[instances[k] > 0] = class_id + 1
        for segmentation in record.get("crowd_segments", ()):
            semantic[segmentation_to_mask(segmentation, height, width) > 0] = 255
        sample["instance_masks"] = instances
        sample["mask"] = semantic


class InMemoryDataset(Dataset):
    """A dataset over a list of ready sample dicts (or a callable `make(index)`)."""

    def __init__(self, samples, class_names, task, *, has_background=False, skipped=None):
        super().__init__(class_names, task, skipped)
        self.samples = samples
        self.has_background = has_background

    def __len__(self):
        return len(self.samples)

    def describe(self, index):
        return self.samples[index].get("path", f"sample {index}")

    def load(self, index):
        return {k: (v.copy() if isinstance(v, np.ndarray) else v)
                for k, v in self.samples[index].items()}


def batches(samples, batch_size):
    """Yields lists of `batch_size` consecutive samples; the last list may be shorter."""
    batch = []
    for sample in samples:
        batch.append(sample)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def log_skipped(dataset, log, split="test"):
    """Reports, through `log`, what `dataset` skipped or repaired while it was read and
    iterated, in the lines of `SkipReport.lines` (nothing when nothing was skipped)."""
    from kerascv_suite.data.skips import SkipReport

    skipped = getattr(dataset, "skipped", None)
    if not skipped:
        return
    report = SkipReport()
    report.collect(split, skipped)
    for line in report.lines():
        log(line)


def clean_boxes(boxes, height, width, *, source, entries, skipped, clip=True):
    """Validates boxes against an image size, counting what it fixes or drops.

    Non-finite, inverted and zero-area boxes are dropped ("box degenerate ...");
    boxes reaching outside the image are clipped ("clipped: box out of image bounds")
    and dropped if nothing is left ("box outside image").

    Args:
        boxes: `(num_boxes, 4)` xyxy.
        height, width: the image size.
        source: the annotation file (for the log).
        entries: per-box entry labels (object index, annotation id, line number).
        skipped: the `SkipLog` to count into.

    Returns:
        `(boxes, keep)`: float32 `(num_kept, 4)` and the int indices kept.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    keep, out = [], []
    for k, box in enumerate(boxes):
        entry = entries[k]
        if not np.isfinite(box).all():
            skipped.add(source, entry, "box not finite")
            continue
        if box[2] <= box[0] or box[3] <= box[1]:
            skipped.add(source, entry, "box degenerate (inverted or zero area)")
            continue
        clipped = np.array([np.clip(box[0], 0, width), np.clip(box[1], 0, height),
                            np.clip(box[2], 0, width), np.clip(box[3], 0, height)])
        if not np.array_equal(clipped, box):
            if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
                skipped.add(source, entry, "box outside image")
                continue
            skipped.add(source, entry, "clipped: box out of image bounds")
            if clip:
                box = clipped
        keep.append(k)
        out.append(box)
    return np.asarray(out, dtype=np.float32).reshape(-1, 4), np.asarray(keep, dtype=np.int64)
