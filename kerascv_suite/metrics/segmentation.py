"""Semantic segmentation metrics from a confusion matrix accumulated over a whole dataset.

mIoU, pixel accuracy and per-class IoU are computed once from the summed confusion matrix
(rows: ground truth, columns: prediction), never averaged per image or per batch, the
convention of the PASCAL VOC and Cityscapes evaluations.

Conventions:
  - Ground-truth pixels equal to `ignore_index` (255, the VOC "void" label) are left out.
  - The IoU of class `c` is `TP / (TP + FP + FN)`. A class absent from both the ground truth
    and the predictions of everything evaluated has no IoU (NaN in `per_class_iou`) and is
    left out of the mean; mIoU is the mean over classes present in the ground truth or the
    predictions. With no pixel evaluated at all, mIoU and pixel accuracy are 0.0.
  - Pixel accuracy is the fraction of evaluated pixels predicted correctly.

Two implementations share these conventions: numpy functions (`segmentation_confusion_matrix`,
`segmentation_scores`, `ConfusionAccumulator`) for evaluation tools, and the Keras metrics
(keras.ops, every backend; `scores_from_matrix` computes their scores) whose state is the
confusion matrix, so a validation epoch's value covers the whole split:
`MeanIoUFromConfusion` reports one number, `ConfusionReport` a dict of mIoU, pixel accuracy
and the IoU of each class.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
from keras import ops

IGNORE_INDEX = 255


def segmentation_confusion_matrix(labels, predictions, num_classes, ignore_index=IGNORE_INDEX):
    """`(num_classes, num_classes)` int64 pixel counts; rows ground truth, columns prediction.

    Args:
        labels: integer ground-truth class maps of any shape (e.g. `(batch, height, width)`).
        predictions: integer predicted class maps of the same shape.
        num_classes: number of classes `K`.
        ignore_index: ground-truth value left out (None: none).

    Raises:
        ValueError: mismatched shapes, or labels/predictions outside `0..K-1` (other than
            `ignore_index` in the labels).
    """
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    if labels.shape != predictions.shape:
        raise ValueError(
            "labels and predictions must have the same shape. "
            f"Received: labels.shape={labels.shape}, predictions.shape={predictions.shape}"
        )
    labels = labels.astype(np.int64).ravel()
    predictions = predictions.astype(np.int64).ravel()
    if ignore_index is not None:
        keep = labels != ignore_index
        labels, predictions = labels[keep], predictions[keep]
    for what, values in (("labels", labels), ("predictions", predictions)):
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError(
                f"{what} must lie in 0..{num_classes - 1} (or be ignore_index={ignore_index}). "
                f"Received: {what} in {values.min()}..{values.max()}"
            )
    counts = np.bincount(labels * num_classes + predictions, minlength=num_classes**2)
    return counts.reshape(num_classes, num_classes)


@dataclasses.dataclass
class SegmentationScores:
    """Scores of one confusion matrix (see the module docstring for the conventions)."""

    miou: float
    pixel_accuracy: float
    per_class_iou: np.ndarray  # (num_classes,), NaN for classes never seen
    confusion_matrix: np.ndarray  # (num_classes, num_classes) int64

    def as_dict(self, class_names=None):
        names = class_names or [str(i) for i in range(len(self.per_class_iou))]
        return {
            "miou": self.miou,
            "pixel_accuracy": self.pixel_accuracy,
            "per_class_iou": {
                n: (None if np.isnan(v) else float(v)) for n, v in zip(names, self.per_class_iou)
            },
        }


def segmentation_scores(matrix) -> SegmentationScores:
    """mIoU, pixel accuracy and per-class IoU from a confusion matrix."""
    matrix = np.asarray(matrix, np.int64)
    true_positive = np.diag(matrix).astype(np.float64)
    union = matrix.sum(axis=0) + matrix.sum(axis=1) - np.diag(matrix)
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, true_positive / union, np.nan)
    seen = union > 0
    total = matrix.sum()
    return SegmentationScores(
        miou=float(iou[seen].mean()) if seen.any() else 0.0,
        pixel_accuracy=float(true_positive.sum() / total) if total else 0.0,
        per_class_iou=iou,
        confusion_matrix=matrix,
    )


class ConfusionAccumulator:
    """Sums confusion matrices over a dataset, image by image or batch by batch.

    Example:
        >>> acc = ConfusionAccumulator(num_classes=21)
        >>> for gt, pred in pairs:
        ...     acc.update(gt, pred)
        >>> acc.scores().miou
    """

    def __init__(self, num_classes, ignore_index=IGNORE_INDEX):
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.matrix = np.zeros((self.num_classes, self.num_classes), np.int64)

    def update(self, labels, predictions):
        self.matrix += segmentation_confusion_matrix(
            labels, predictions, self.num_classes, self.ignore_index
        )
        return self

    def scores(self) -> SegmentationScores:
        return segmentation_scores(self.matrix)


def scores_from_matrix(matrix):
    """keras.ops version of `segmentation_scores` (same conventions, float32).

    Args:
        matrix: `(num_classes, num_classes)` pixel counts; rows ground truth, columns
            prediction.

    Returns:
        `(miou, pixel_accuracy, per_class_iou)`: two scalars and a `(num_classes,)` tensor,
        NaN for classes absent from both the ground truth and the predictions.
    """
    matrix = ops.cast(matrix, "float32")
    true_positive = ops.diagonal(matrix)
    union = ops.sum(matrix, axis=0) + ops.sum(matrix, axis=1) - true_positive
    seen = union > 0
    iou = ops.where(seen, true_positive / ops.maximum(union, 1.0), 0.0)
    num_seen = ops.sum(ops.cast(seen, "float32"))
    miou = ops.where(num_seen > 0, ops.sum(iou) / ops.maximum(num_seen, 1.0), 0.0)
    total = ops.sum(matrix)
    accuracy = ops.where(total > 0, ops.sum(true_positive) / ops.maximum(total, 1.0), 0.0)
    per_class = ops.where(seen, iou, float("nan"))
    return miou, accuracy, per_class


@keras.saving.register_keras_serializable(package="kerascv_suite")
class MeanIoUFromConfusion(keras.metrics.Metric):
    """Dataset-level mIoU (or pixel accuracy) from an accumulated confusion matrix.

    `update_state(y_true, y_pred)` adds the batch's confusion matrix to the state;
    `result()` computes the score from the sum, so `model.evaluate` / per-epoch validation
    report the score of the whole split, not a mean of per-batch scores.

    Args:
        num_classes: number of classes `K`.
        ignore_index: ground-truth value left out (255).
        metric: what `result()` returns: `"miou"` or `"pixel_accuracy"`.
        name: metric name in logs (defaults to `metric`).

    Inputs: `y_true` integer class maps `(batch, height, width)` or
    `(batch, height, width, 1)`; `y_pred` class scores `(batch, height, width, K)` (argmax
    taken) or integer class maps shaped like `y_true`. Ground-truth values outside
    `0..K-1` other than `ignore_index` are ignored too (a graph cannot raise);
    `segmentation_confusion_matrix` rejects them.

    Example:
        >>> model.compile(loss=..., metrics=[MeanIoUFromConfusion(5),
        ...               MeanIoUFromConfusion(5, metric="pixel_accuracy")])
    """

    def __init__(self, num_classes, ignore_index=IGNORE_INDEX, metric="miou", name=None,
                 dtype=None):  # fmt: skip
        if metric not in ("miou", "pixel_accuracy"):
            raise ValueError(
                f"metric must be 'miou' or 'pixel_accuracy'. Received: metric={metric!r}"
            )
        super().__init__(name=name or metric, dtype=dtype)
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.metric = metric
        # int32 counts stay exact up to 2**31 pixels per cell (float32 would stop at 2**24).
        self.confusion = self.add_variable(
            shape=(self.num_classes, self.num_classes),
            initializer="zeros",
            dtype="int32",
            name="confusion_matrix",
        )

    def update_state(self, y_true, y_pred, sample_weight=None):
        if sample_weight is not None:
            raise ValueError("MeanIoUFromConfusion does not take sample weights; use ignore_index.")
        y_true = ops.convert_to_tensor(y_true)
        y_pred = ops.convert_to_tensor(y_pred)
        if len(y_true.shape) == len(y_pred.shape) and y_true.shape[-1] == 1 != y_pred.shape[-1]:
            y_true = ops.squeeze(y_true, -1)
        if len(y_pred.shape) == len(y_true.shape) + 1:
            y_pred = ops.argmax(y_pred, axis=-1)
        k = self.num_classes
        labels = ops.reshape(ops.cast(y_true, "int32"), (-1,))
        predictions = ops.reshape(ops.cast(y_pred, "int32"), (-1,))
        valid = (labels >= 0) & (labels < k) & (predictions >= 0) & (predictions < k)
        if self.ignore_index is not None:
            valid = valid & (labels != self.ignore_index)
        # Left-out pixels go to an extra bin, dropped after counting. segment_sum with a
        # static number of segments compiles under jax.jit (bincount would need the data).
        bins = ops.where(valid, labels * k + predictions, k * k)
        ones = ops.ones_like(bins)
        counts = ops.segment_sum(ones, bins, num_segments=k * k + 1)[: k * k]
        self.confusion.assign_add(ops.reshape(ops.cast(counts, "int32"), (k, k)))

    def result(self):
        miou, accuracy, _ = scores_from_matrix(self.confusion)
        return miou if self.metric == "miou" else accuracy

    def per_class_iou(self):
        """`(num_classes,)` IoU of each class, NaN for classes never seen."""
        return scores_from_matrix(self.confusion)[2]

    def reset_state(self):
        self.confusion.assign(ops.zeros((self.num_classes, self.num_classes), "int32"))

    def get_config(self):
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "ignore_index": self.ignore_index,
            "metric": self.metric,
        }


@keras.saving.register_keras_serializable(package="kerascv_suite")
class ConfusionReport(MeanIoUFromConfusion):
    """A `MeanIoUFromConfusion` whose result is a dict: `miou`, `pixel_accuracy` and
    `iou_<class name>` per class, all from one confusion matrix of the whole split.

    Keras logs every entry of the dict (`val_`-prefixed on the validation split), so one
    metric gives the per-epoch mIoU, pixel accuracy and per-class IoU of a segmenter. It is
    registered as `kerascv_suite>ConfusionReport`, the name the training pipeline has always
    saved it under, so its checkpoints load.

    Args:
        num_classes: number of classes `K`.
        class_names: `K` names for the `iou_<name>` keys (None: `"0"`..`"K-1"`).
        name: metric name in logs.
        **kwargs: `ignore_index`, `dtype` (see `MeanIoUFromConfusion`).

    Example:
        >>> report = ConfusionReport(2, ["background", "shape"])
        >>> report.update_state(masks, probabilities)  # (B, H, W), (B, H, W, 2)
        >>> sorted(report.result())
        ['iou_background', 'iou_shape', 'miou', 'pixel_accuracy']
    """

    def __init__(self, num_classes, class_names=None, name="report", **kwargs):
        super().__init__(num_classes, name=name, **kwargs)
        self.class_names = list(class_names or [str(i) for i in range(num_classes)])

    def result(self):
        miou, accuracy, per_class = scores_from_matrix(self.confusion)
        out = {"miou": miou, "pixel_accuracy": accuracy}
        for index, class_name in enumerate(self.class_names):
            out[f"iou_{class_name}"] = per_class[index]
        return out

    def get_config(self):
        return {**super().get_config(), "class_names": self.class_names}
