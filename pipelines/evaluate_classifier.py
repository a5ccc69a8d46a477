"""Evaluate image classifiers: accuracy, top-5, per-class P/R/F1, confusion-matrix plot.

Example:
    >>> from kerascv_suite.pipelines.evaluate_classifier import EvaluateConfig, run
    >>> result = run(EvaluateConfig(models=["models:/lenet5-digits@champion"], tta="10crop"))
    >>> result.report.accuracy

Models are anything `kerascv_suite.models.resolve.get_model` accepts (registry name,
`.keras` file, MLflow URI). Several models form an ensemble that averages their softmax
outputs. `tta="10crop"` is AlexNet's test-time augmentation (Krizhevsky, Sutskever and
Hinton, "ImageNet Classification with Deep Convolutional Neural Networks", 2012, sec. 4.1):
the image is resized to 256/224 of the model's input, and the softmax outputs of the four
corner crops, the centre crop and their horizontal mirrors are averaged.

Keras is imported lazily (inside `run`), so the CLI can set the backend first.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

TTA_MODES = ("10crop",)
# AlexNet crops 224x224 patches from 256x256 images (sec. 4.1).
TEN_CROP_RESIZE = 256 / 224


@dataclasses.dataclass
class EvaluateConfig:
    """What to evaluate on which data.

    Attributes:
        models: one or more model references; several form a softmax-averaging ensemble.
        data: `"digits"` (built in) or a folder of class sub-folders (`<class>/*.png`, or
            `<split>/<class>/*.png`).
        split: the split to evaluate (`digits`: train, val, test or all; a folder: its
            sub-folder of that name if present, else the whole folder).
        tta: None or `"10crop"`.
        batch_size: images per forward pass (10-crop passes ten times as many).
        image_size: square input side for models whose input size is not fixed.
        out: folder for `report.json` and `confusion_matrix.png` (None: nothing written).
    """

    models: list
    data: str = "digits"
    split: str = "test"
    tta: str | None = None
    batch_size: int = 64
    image_size: int | None = None
    out: str | None = None

    def __post_init__(self):
        if isinstance(self.models, str):
            self.models = [self.models]
        self.models = list(self.models)
        if not self.models:
            raise ValueError("Give at least one model to evaluate. Received: models=[]")
        if self.tta is not None and self.tta not in TTA_MODES:
            raise ValueError(f"tta must be None or one of {TTA_MODES}. Received: tta={self.tta!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be positive. Received: {self.batch_size}")


@dataclasses.dataclass
class EvaluateResult:
    """The report plus where it was written."""

    report: object  # kerascv_suite.metrics.ClassificationReport
    config: EvaluateConfig
    ensemble: str  # "single", "model" (one averaging keras model) or "mean" (per member)
    report_path: Path | None = None
    confusion_matrix_path: Path | None = None

    def as_dict(self):
        return {
            "models": self.config.models,
            "data": self.config.data,
            "split": self.config.split,
            "tta": self.config.tta,
            **self.report.as_dict(),
            "confusion_matrix_png": str(self.confusion_matrix_path)
            if self.confusion_matrix_path else None,
        }


def load_split(data, split, channels):
    """The dataset to evaluate: the built-in digits split or a folder of class folders."""
    if data == "digits":
        from kerascv_suite.data.builtin.digits import load_digits

        return load_digits(split)
    root = Path(data)
    if not root.is_dir():
        raise FileNotFoundError(
            f"--data must be 'digits' or a folder of class folders. Received: data={data!r}"
        )
    from kerascv_suite.data.formats.folders import read_folders

    return read_folders(root, split if (root / split).is_dir() else None, channels=channels)


def _resize(image, size):
    import cv2

    height, width = size
    if image.shape[:2] == (height, width):
        return image
    resized = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
    return resized.reshape(height, width, image.shape[2])


def _match_channels(images, channels):
    """Grayscale data for an RGB model is repeated; RGB data for a gray model is averaged."""
    have = images.shape[-1]
    if have == channels:
        return images
    if have == 1:
        return np.repeat(images, channels, axis=-1)
    if channels == 1:
        return images.mean(axis=-1, keepdims=True).round().astype(images.dtype)
    raise ValueError(f"Cannot feed {have}-channel images to a {channels}-channel model.")


def ten_crop(image, size):
    """AlexNet's ten views of one image.

    Args:
        image: `(height, width, channels)` array, at least `size`.
        size: `(crop_height, crop_width)`.

    Returns:
        `(10, crop_height, crop_width, channels)`: top-left, top-right, bottom-left,
        bottom-right and centre crops, then the same five mirrored left-right.
    """
    height, width = image.shape[:2]
    ch, cw = size
    if height < ch or width < cw:
        raise ValueError(f"A {height}x{width} image is smaller than the {ch}x{cw} crop.")
    top, left = (height - ch) // 2, (width - cw) // 2
    corners = [(0, 0), (0, width - cw), (height - ch, 0), (height - ch, width - cw), (top, left)]
    crops = [image[y:y + ch, x:x + cw] for y, x in corners]
    crops += [crop[:, ::-1] for crop in crops]
    return np.stack(crops)


def _views(images, size, tta):
    """`(batch * views, h, w, c)` inputs and the number of views per image."""
    if tta is None:
        return np.stack([_resize(image, size) for image in images]), 1
    big = (round(size[0] * TEN_CROP_RESIZE), round(size[1] * TEN_CROP_RESIZE))
    return np.concatenate([ten_crop(_resize(image, big), size) for image in images]), 10


class _Member:
    """One model with the input size and channel count its images are prepared for."""

    def __init__(self, model, image_size, fallback_size):
        self.model = model
        shape = tuple(model.inputs[0].shape[1:])
        if len(shape) != 3:
            raise ValueError(f"Model {model.name!r} does not take images: input {shape}.")
        height, width, channels = shape
        if height is None or width is None:
            side = image_size or fallback_size
            height, width = (side, side) if isinstance(side, int) else side
        self.size = (int(height), int(width))
        self.channels = int(channels) if channels else 3

    def predict(self, images, tta):
        inputs, views = _views(_match_channels(images, self.channels), self.size, tta)
        probabilities = np.asarray(self.model.predict_on_batch(inputs), np.float64)
        if probabilities.ndim != 2:
            raise ValueError(f"Model {self.model.name!r} does not output (batch, classes).")
        # Mean over each image's views (the views of one image are consecutive).
        return probabilities.reshape(len(images), views, -1).mean(axis=1)


def _ensemble_members(models, image_size, fallback_size):
    """One averaging keras model when the members share their input (one forward pass per
    batch), else the members themselves, averaged in numpy (same arithmetic)."""
    members = [_Member(m, image_size, fallback_size) for m in models]
    if len(members) == 1:
        return members, "single"
    shapes = {(m.size, m.channels) for m in members}
    if len(shapes) > 1:
        return members, "mean"
    from kerascv_suite.models.classification.ensemble import ensemble

    averaged = ensemble([m.model for m in members], name="ensemble")
    return [_Member(averaged, image_size, fallback_size)], "model"


def predict_dataset(members, dataset, batch_size, tta, log=print):
    """Averaged probabilities `(num_samples, num_classes)` and labels `(num_samples,)`."""
    from kerascv_suite.data.dataset import batches, log_skipped

    probabilities, labels = [], []
    for batch in batches(dataset, batch_size):
        images = np.stack([sample["image"] for sample in batch])
        outputs = [member.predict(images, tta) for member in members]
        probabilities.append(np.mean(outputs, axis=0))
        labels.extend(int(sample["label"]) for sample in batch)
    if not labels:
        raise ValueError("The evaluation split is empty; nothing to evaluate.")
    log_skipped(dataset, log)
    return np.concatenate(probabilities), np.asarray(labels)


def run(config: EvaluateConfig, log=print) -> EvaluateResult:
    """Loads the models and the data, predicts, and computes (and optionally writes) the report.

    Raises:
        ValueError: models that disagree with the data's number of classes, an unknown split.
        FileNotFoundError: a data folder or model file that does not exist.
    """
    from kerascv_suite.metrics import classification_report
    from kerascv_suite.models.resolve import get_model

    models = [get_model(ref) for ref in config.models]
    channels = {int(m.inputs[0].shape[-1] or 3) for m in models}
    dataset = load_split(config.data, config.split, channels=1 if channels == {1} else 3)
    num_classes = {int(m.outputs[0].shape[-1]) for m in models}
    if num_classes != {len(dataset.class_names)}:
        raise ValueError(
            f"The model(s) predict {sorted(num_classes)} classes but {config.data!r} has "
            f"{len(dataset.class_names)}. Received: models={config.models}"
        )
    first = dataset[0]["image"]
    members, mode = _ensemble_members(models, config.image_size, first.shape[:2])
    probabilities, labels = predict_dataset(members, dataset, config.batch_size, config.tta,
                                            log=log)
    report = classification_report(probabilities, labels, dataset.class_names)
    result = EvaluateResult(report=report, config=config, ensemble=mode)
    if config.out:
        write_outputs(result, Path(config.out))
    return result


def write_outputs(result, out):
    """Writes `report.json` and `confusion_matrix.png` into `out`."""
    from kerascv_suite.training.plots import plot_confusion_matrix

    out.mkdir(parents=True, exist_ok=True)
    result.confusion_matrix_path = out / "confusion_matrix.png"
    tta = f", {result.config.tta}" if result.config.tta else ""
    plot_confusion_matrix(
        result.report.confusion, result.report.class_names, result.confusion_matrix_path,
        title=f"confusion matrix ({result.config.split}{tta}), "
              f"accuracy {result.report.accuracy:.4f}",
    )
    result.report_path = out / "report.json"
    result.report_path.write_text(json.dumps(result.as_dict(), indent=2))
    return result
