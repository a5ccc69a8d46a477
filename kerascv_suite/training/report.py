"""End-of-run report of a classifier: test metrics, plots and the model summary."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kerascv_suite.metrics.classification import accuracy, confusion_matrix, top_k_accuracy
from kerascv_suite import visualization as plots


def classification_metrics(probabilities, labels, prefix="test_"):
    """Accuracy, top-5 accuracy (with more than 5 classes) and cross-entropy loss."""
    probabilities = np.asarray(probabilities, np.float64)
    labels = np.asarray(labels, int)
    rows = np.arange(len(labels))
    metrics = {
        f"{prefix}accuracy": accuracy(probabilities, labels),
        f"{prefix}loss": float(-np.mean(np.log(np.clip(probabilities[rows, labels], 1e-12,
                                                       None)))),
    }
    if probabilities.shape[1] > 5:
        metrics[f"{prefix}top5_accuracy"] = top_k_accuracy(probabilities, labels, 5)
    return metrics


def model_summary_text(model) -> str:
    """The per-layer table of `kerascv_suite.analysis` (params, MACs, receptive fields)."""
    from kerascv_suite.analysis import analyze_model, format_table

    return format_table(analyze_model(model))


def write_report(folder, *, history, probabilities, labels, images, class_names, model):
    """Writes the run's plots and summary into `folder`; returns the written paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    predictions = probabilities.argmax(axis=1)
    paths = []
    if history:
        plots.plot_curves(history, folder / "training_curves.png")
        paths.append(folder / "training_curves.png")
    matrix = confusion_matrix(labels, predictions, len(class_names))
    plots.plot_confusion_matrix(matrix, class_names, folder / "confusion_matrix.png")
    plots.plot_predictions(images, labels, predictions, class_names,
                           folder / "sample_predictions.png")
    (folder / "model_summary.txt").write_text(model_summary_text(model) + "\n",
                                              encoding="utf-8")
    paths += [folder / "confusion_matrix.png", folder / "sample_predictions.png",
              folder / "model_summary.txt"]
    return paths
