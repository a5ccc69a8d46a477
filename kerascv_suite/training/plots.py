"""Plots written into a run's `plots/` folder: curves, confusion matrix, sample predictions."""

from __future__ import annotations

import math

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; never open a window
    import matplotlib.pyplot as plt

    return plt


def plot_curves(history: list[dict], path):
    """One panel per metric (loss, accuracy, ...), train and validation together."""
    plt = _pyplot()
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
    plt = _pyplot()
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
    """A grid of images titled `pred (true)`, wrong predictions in red."""
    plt = _pyplot()
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
