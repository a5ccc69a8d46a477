"""Score a folder of predicted masks against ground-truth masks (matched by file stem).

Masks are class-id PNGs (palette or grayscale, as `kcv segment` and the VOC/masks formats
write them); 255 in the ground truth is "void" and not scored. The scores come from one
confusion matrix summed over every matched pair (`kerascv_suite.metrics.segmentation`).

Example:
    >>> report = evaluate_folders("gt/", "pred/", num_classes=4)
    >>> report.scores.miou, report.missing_predictions
"""

from __future__ import annotations

import dataclasses
from pathlib import Path


@dataclasses.dataclass
class SegmentationReport:
    """Scores plus every file that could not be scored, and why."""

    scores: object  # SegmentationScores
    matched: int
    missing_predictions: list  # ground-truth stems without a prediction
    extra_predictions: list  # prediction stems without ground truth
    mismatched: list  # [(stem, reason)]: size mismatch, unreadable, values out of range

    def as_dict(self, class_names=None):
        return {
            **self.scores.as_dict(class_names),
            "matched": self.matched,
            "missing_predictions": self.missing_predictions,
            "extra_predictions": self.extra_predictions,
            "mismatched": [{"stem": s, "reason": r} for s, r in self.mismatched],
        }


def _by_stem(folder):
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"No such folder: {folder}. Received: {str(folder)!r}")
    files = {}
    for path in sorted(root.iterdir()):
        if path.is_file() and not path.name.startswith("."):
            files.setdefault(path.stem, path)
    return files


def evaluate_folders(gt_folder, pred_folder, num_classes, ignore_index=255):
    """Scores every prediction whose stem has a ground-truth mask.

    Args:
        gt_folder: folder of ground-truth class-id masks.
        pred_folder: folder of predicted class-id masks.
        num_classes: number of classes `K` (mask values `0..K-1`).
        ignore_index: ground-truth value left out.

    Returns:
        A `SegmentationReport`.
    """
    import numpy as np

    from kerascv_suite.data import read_mask
    from kerascv_suite.data.errors import BadImageError
    from kerascv_suite.metrics.segmentation import (ConfusionAccumulator,
                                                    segmentation_confusion_matrix)

    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1. Received: num_classes={num_classes}")
    truth, predicted = _by_stem(gt_folder), _by_stem(pred_folder)
    accumulator = ConfusionAccumulator(num_classes, ignore_index)
    mismatched, matched = [], 0
    for stem in sorted(set(truth) & set(predicted)):
        try:
            gt, pred = read_mask(truth[stem]), read_mask(predicted[stem])
        except BadImageError as error:
            mismatched.append((stem, f"unreadable {Path(error.path).name}: {error.reason}"))
            continue
        if gt.shape != pred.shape:
            mismatched.append((stem, f"size {pred.shape[1]}x{pred.shape[0]} predicted, "
                                     f"{gt.shape[1]}x{gt.shape[0]} ground truth"))
            continue
        try:
            matrix = segmentation_confusion_matrix(gt, pred, num_classes, ignore_index)
        except ValueError as error:
            mismatched.append((stem, str(error).split(". Received")[0]))
            continue
        accumulator.matrix += matrix.astype(np.int64)
        matched += 1
    return SegmentationReport(
        scores=accumulator.scores(),
        matched=matched,
        missing_predictions=sorted(set(truth) - set(predicted)),
        extra_predictions=sorted(set(predicted) - set(truth)),
        mismatched=mismatched,
    )


def load_split(data, format, split, size, shapes_count=160, seed=0, unknown_class="error"):
    """The labelled split a segmenter is evaluated on: the built-in shapes test split
    (generated at the model's input size, as `kcv train` generated it) or a folder's."""
    from types import SimpleNamespace

    from kerascv_suite.data import list_splits, make_shapes, read_dataset
    from kerascv_suite.data.splits import check_folder, detect_format
    from kerascv_suite.tasks.detection import reader_options

    if data == "shapes":
        return make_shapes(shapes_count, size[0], seed=seed, split=split)
    root = check_folder(data, "shapes")
    fmt = format or detect_format(root, "segmentation")
    splits = [s for s in list_splits(root, fmt) if s is not None]
    if splits and split not in splits:
        raise ValueError(f"{root} has no split {split!r}; it has {splits}. "
                         f"Received: split={split!r}")
    options = reader_options(fmt, "segmentation", SimpleNamespace(unknown_class=unknown_class))
    return read_dataset(root, fmt, split if splits else None, **options)


def evaluate_model(model, data="shapes", format=None, split="test", batch_size=8,
                   shapes_count=160, seed=0, log=print, unknown_class="error"):
    """Scores a segmenter on a labelled split with the segmentation task's one evaluation
    path (`kerascv_suite.tasks.segmentation.evaluate_segmenter`, the code that scores the
    test split at the end of training): mIoU, pixel accuracy and per-class IoU in each
    image's own pixels.

    Returns:
        A dict: `miou`, `pixel_accuracy`, `per_class_iou` `{class: iou}`, `images`,
        `class_names`.
    """
    from kerascv_suite.data.dataset import log_skipped
    from kerascv_suite.models.metadata import describe
    from kerascv_suite.tasks.segmentation import evaluate_segmenter

    size = tuple(model.inputs[0].shape[1:3])
    dataset = load_split(data, format, split, size, shapes_count, seed, unknown_class)
    names = list(dataset.mask_class_names)
    if model.output_shape[-1] != len(names):
        raise ValueError(f"The segmenter predicts {model.output_shape[-1]} classes "
                         f"{describe(model)['class_names'] or ''} but {data!r} has "
                         f"{len(names)}: {names}. Evaluate on data with the classes it was "
                         f"trained on.")
    result = evaluate_segmenter(model, dataset, names, batch_size)
    log_skipped(dataset, log, split=split)
    metrics = result.metrics()
    return {"miou": metrics["miou"], "pixel_accuracy": metrics["pixel_accuracy"],
            "per_class_iou": {name: float(iou) for name, iou in
                              zip(names, result.scores.per_class_iou)},
            "images": len(dataset), "class_names": names, "data": data, "split": split}
