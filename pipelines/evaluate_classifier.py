"""Evaluate image classifiers: accuracy, top-5, per-class P/R/F1, confusion-matrix plot.

Example:
    >>> from kerascv_suite.pipelines.evaluate_classifier import EvaluateConfig, run
    >>> result = run(EvaluateConfig(models=["models:/lenet5-digits@champion"], tta="10crop"))
    >>> result.report.accuracy

Models are anything `kerascv_suite.models.resolve.get_model` accepts (registry name,
`.keras` file, MLflow URI). Several models form an ensemble that averages their softmax
outputs; `tta="10crop"` is AlexNet's test-time augmentation. Prediction is
`kerascv_suite.models.classification.inference.predict_dataset`, the code that scores the
test split at the end of training.

Keras is imported lazily (inside `run`), so the CLI can set the backend first.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from kerascv_suite.models.classification.inference import (TTA_MODES, ensemble_members,
                                                           predict_dataset)


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
    members, mode = ensemble_members(models, config.image_size, first.shape[:2])
    probabilities, labels = predict_dataset(members, dataset, config.batch_size, config.tta,
                                            log=log)
    report = classification_report(probabilities, labels, dataset.class_names)
    result = EvaluateResult(report=report, config=config, ensemble=mode)
    if config.out:
        write_outputs(result, Path(config.out))
    return result


def write_outputs(result, out):
    """Writes `report.json` and `confusion_matrix.png` into `out`."""
    from kerascv_suite.visualization import plot_confusion_matrix

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
