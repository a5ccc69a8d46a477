"""Matplotlib plots written into a run's report folders: training curves, confusion
matrices, prediction grids, precision-recall curves.

Every function draws into a new figure, saves it to `path` (PNG, 100 dpi) and closes it;
matplotlib runs on the non-interactive Agg backend (files only, never a window), and is
imported on first use so importing this module stays cheap.

Example:
    >>> plot_curves([{"epoch": 1, "loss": 0.9, "val_loss": 1.0},
    ...              {"epoch": 2, "loss": 0.5, "val_loss": 0.7}], "curves.png")
"""

from __future__ import annotations

import math

import numpy as np


def pyplot():
    """`matplotlib.pyplot` on the Agg backend (files only; never opens a window)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(history: list[dict], path):
    """One panel per metric (loss, accuracy, ...), train and validation together.

    Args:
        history: one dict per epoch: `epoch`, the metrics, their `val_` counterparts (an
            `lr` entry is left out).
        path: the PNG to write.
    """
    plt = pyplot()
    names = [k for k in history[0] if k not in ("epoch", "lr") and not k.startswith("val_")]
    epochs = [row["epoch"] for row in history]
    fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.5), squeeze=False)
    for ax, name in zip(axes[0], names):
        ax.plot(epochs, [row.get(name) for row in history], marker="o", label="train")
        if f"val_{name}" in history[0]:
            ax.plot(epochs, [row.get(f"val_{name}") for row in history], marker="o",
                    label="val")
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_confusion_matrix(matrix, class_names, path, title="confusion matrix (test)"):
    """A confusion matrix as a heatmap, counts written in the cells (up to 30 classes).

    Args:
        matrix: `(num_classes, num_classes)` counts; rows true, columns predicted.
        class_names: `num_classes` tick labels.
        path: the PNG to write.
        title: the figure title.
    """
    plt = pyplot()
    n = len(class_names)
    size = min(max(4.0, 0.45 * n + 2), 20)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(n), class_names, rotation=90 if n > 10 else 0)
    ax.set_yticks(range(n), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if n <= 30:
        threshold = matrix.max() / 2 if matrix.size else 0
        for i in range(n):
            for j in range(n):
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if matrix[i, j] > threshold else "black")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_predictions(images, labels, predictions, class_names, path, max_images=25):
    """A grid of images titled `pred (true)`, wrong predictions in red.

    Args:
        images: `(num_images, height, width, channels)` (1 channel: drawn gray).
        labels, predictions: `(num_images,)` class ids.
        class_names: names of the class ids.
        path: the PNG to write.
        max_images: at most this many images are drawn.
    """
    plt = pyplot()
    count = min(len(images), max_images)
    cols = math.ceil(math.sqrt(count))
    rows = math.ceil(count / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2 * cols, 2.2 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i in range(count):
        ax = axes.ravel()[i]
        image = np.asarray(images[i])
        ax.imshow(image[..., 0] if image.shape[-1] == 1 else image.astype(np.uint8),
                  cmap="gray" if image.shape[-1] == 1 else None)
        ok = predictions[i] == labels[i]
        ax.set_title(f"{class_names[predictions[i]]} ({class_names[labels[i]]})", fontsize=8,
                     color="green" if ok else "red")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_pr_curves(coco_result, class_names, path, iou_index=0, title=None):
    """Precision-recall curve of each class at IoU 0.5 (`iou_index` 0 of COCO's .50:.95),
    all areas, 100 detections: COCOeval's interpolated precision at 101 recall points.

    Args:
        coco_result: a `kerascv_suite.metrics.detection.COCOResult`; its `precision` is
            `(iou_thresholds, 101, categories, areas, max_detections)`, -1 where a class
            has no ground truth.
        class_names: names of class ids `0..C-1` (classes without ground truth are left
            out of the plot).
        path: the PNG to write.
        iou_index: index into `IOU_THRESHOLDS`.
        title: the figure title (default names the IoU).
    """
    from kerascv_suite.metrics.detection import IOU_THRESHOLDS, RECALL_THRESHOLDS

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 5))
    ids = list(coco_result.category_ids)
    for k, name in enumerate(class_names):
        if k not in ids:
            continue
        precision = coco_result.precision[iou_index, :, ids.index(k), 0, -1]
        if np.all(precision < 0):
            continue  # no ground truth of this class
        ap = float(np.mean(precision[precision > -1]))
        ax.plot(RECALL_THRESHOLDS, np.clip(precision, 0, 1), label=f"{name} AP {ap:.3f}")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(title or f"PR curves (test, IoU {IOU_THRESHOLDS[iou_index]:.2f})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_val_ap(history, path):
    """Validation AP, AP50 and AP75 per validated epoch (epochs without validation skipped).

    Args:
        history: one dict per epoch with `epoch` and, where validated, `val_ap`,
            `val_ap50`, `val_ap75` (None or "" elsewhere).
        path: the PNG to write.
    """
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for key in ("val_ap", "val_ap50", "val_ap75"):
        rows = [row for row in history if row.get(key) not in (None, "")]
        if rows:
            ax.plot([r["epoch"] for r in rows], [float(r[key]) for r in rows], marker="o",
                    label=key.removeprefix("val_"))
    ax.set_xlabel("epoch")
    ax.set_ylim(0, 1)
    ax.set_title("validation AP (COCO)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
