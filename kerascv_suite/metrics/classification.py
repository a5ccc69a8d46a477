"""Classification metrics from predicted class probabilities.

Definitions follow scikit-learn's (`accuracy_score`, `top_k_accuracy_score`,
`precision_recall_fscore_support`, `confusion_matrix`), including its convention that a
precision or recall with a zero denominator is 0; the tests compare against scikit-learn on
the same inputs.
"""

from __future__ import annotations

import dataclasses

import numpy as np


def _check(probabilities, labels):
    probabilities = np.asarray(probabilities, np.float64)
    labels = np.asarray(labels).astype(np.int64)
    if probabilities.ndim != 2 or labels.shape != (len(probabilities),):
        raise ValueError(
            "Expected probabilities (num_samples, num_classes) and labels (num_samples,). "
            f"Received: probabilities.shape={probabilities.shape}, labels.shape={labels.shape}"
        )
    if len(labels) == 0:
        raise ValueError("Nothing to evaluate: there are no samples.")
    if labels.min() < 0 or labels.max() >= probabilities.shape[1]:
        raise ValueError(
            f"Labels must lie in 0..{probabilities.shape[1] - 1} (the model's classes). "
            f"Received: labels in {labels.min()}..{labels.max()}"
        )
    return probabilities, labels


def accuracy(probabilities, labels) -> float:
    """Fraction of samples whose highest-probability class is the label."""
    probabilities, labels = _check(probabilities, labels)
    return float(np.mean(probabilities.argmax(axis=1) == labels))


def top_k_accuracy(probabilities, labels, k=5) -> float:
    """Fraction of samples whose label is among the `k` most probable classes.

    With `k >= num_classes` every sample counts as correct (as in scikit-learn).
    """
    probabilities, labels = _check(probabilities, labels)
    k = min(int(k), probabilities.shape[1])
    # A label counts when fewer than k classes score strictly higher: ties do not push it out.
    label_scores = probabilities[np.arange(len(labels)), labels]
    higher = (probabilities > label_scores[:, None]).sum(axis=1)
    return float(np.mean(higher < k))


def confusion_matrix(labels, predictions, num_classes) -> np.ndarray:
    """`(num_classes, num_classes)` int64 counts; rows are true classes, columns predictions."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(labels, np.int64), np.asarray(predictions, np.int64)), 1)
    return matrix


def precision_recall_f1(matrix):
    """Per-class precision, recall, F1 and support from a confusion matrix.

    Returns:
        Four `(num_classes,)` arrays; a zero denominator gives 0 (scikit-learn's
        `zero_division=0`).
    """
    matrix = np.asarray(matrix, np.float64)
    true_positive = np.diag(matrix)
    predicted = matrix.sum(axis=0)
    support = matrix.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, true_positive / predicted, 0.0)
        recall = np.where(support > 0, true_positive / support, 0.0)
        total = precision + recall
        f1 = np.where(total > 0, 2 * precision * recall / total, 0.0)
    return precision, recall, f1, support.astype(np.int64)


@dataclasses.dataclass
class ClassificationReport:
    """Metrics of one evaluation; `as_dict()` is JSON-ready."""

    accuracy: float
    top5_accuracy: float
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    support: np.ndarray
    confusion: np.ndarray
    class_names: list

    @property
    def macro_f1(self) -> float:
        return float(np.mean(self.f1))

    def as_dict(self):
        per_class = [
            {"class": name, "precision": float(p), "recall": float(r), "f1": float(f),
             "support": int(s)}
            for name, p, r, f, s in zip(self.class_names, self.precision, self.recall, self.f1,
                                        self.support)
        ]
        return {
            "num_samples": int(self.support.sum()),
            "accuracy": self.accuracy,
            "top5_accuracy": self.top5_accuracy,
            "macro_precision": float(np.mean(self.precision)),
            "macro_recall": float(np.mean(self.recall)),
            "macro_f1": self.macro_f1,
            "per_class": per_class,
            "confusion_matrix": self.confusion.tolist(),
        }


def classification_report(probabilities, labels, class_names=None) -> ClassificationReport:
    """Accuracy, top-5 accuracy, per-class precision/recall/F1 and the confusion matrix."""
    probabilities, labels = _check(probabilities, labels)
    num_classes = probabilities.shape[1]
    if class_names is None:
        class_names = [str(i) for i in range(num_classes)]
    if len(class_names) != num_classes:
        raise ValueError(
            f"The model predicts {num_classes} classes but the data names "
            f"{len(class_names)}. Received: class_names={list(class_names)}"
        )
    matrix = confusion_matrix(labels, probabilities.argmax(axis=1), num_classes)
    precision, recall, f1, support = precision_recall_f1(matrix)
    return ClassificationReport(
        accuracy=accuracy(probabilities, labels),
        top5_accuracy=top_k_accuracy(probabilities, labels, 5),
        precision=precision, recall=recall, f1=f1, support=support, confusion=matrix,
        class_names=list(class_names),
    )
