"""The `Task` interface: what a task (classification, detection, ...) supplies to the runner.

`kerascv_suite.training.runner.run(task, config)` owns everything every task shares: the run
folder, resume, chief/worker handling, the MLflow run and the one finalize step (best
checkpoint -> test evaluation -> report -> logged and registered model). A task supplies the
rest through the named methods below; each task is one file in this package.

Adding a task: subclass `Task` in `kerascv_suite/tasks/<task>.py`, give it a config dataclass
(a `TrainConfig` subclass), implement `load_data`, `build_model`, `compile`, `evaluate`
and `write_report` (the others have defaults), list it in `kerascv_suite/tasks/__init__.py`
and give it a CLI alias in `apps/train_cmd.py`.

This module imports neither Keras nor TensorFlow at import time.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from kerascv_suite.tasks.config import TrainConfig


@dataclasses.dataclass
class TaskData:
    """What `Task.load_data` returns.

    Attributes:
        splits: the datasets by split name (`"train"`, `"val"`, `"test"`; val may be None).
        loaders: `DataLoader`s by split name (the ones the task reads batches from).
        train, val: what `model.fit` gets (tf.data pipelines), val None without a val split.
        class_names: the names the model's outputs stand for.
        input_shape: `(height, width, channels)` of the model's input.
        extra: task-specific state (cached proposals, heatmap sizes, ...).
        skips: a `kerascv_suite.data.skips.SkipReport` of every entry skipped or repaired
            while the splits were read (and, as they are found, while loaders and
            evaluations decode them); empty when nothing was skipped.
    """

    splits: dict
    loaders: dict
    class_names: list
    input_shape: tuple
    train: Any = None
    val: Any = None
    extra: dict = dataclasses.field(default_factory=dict)
    skips: Any = dataclasses.field(default_factory=lambda: empty_skip_report())

    @property
    def train_loader(self):
        return self.loaders["train"]

    @property
    def has_val(self) -> bool:
        return self.splits.get("val") is not None

    def describe(self) -> str:
        sizes = ", ".join(f"{name} {len(ds)}" for name, ds in self.splits.items()
                          if ds is not None)
        return (f"{len(self.class_names)} classes, {sizes} samples, input "
                f"{'x'.join(map(str, self.input_shape))}")

    def monitor(self, name):
        """`name`, or its training-set twin when there is no validation split."""
        return name if self.has_val else name.removeprefix("val_")

    def close(self):
        for loader in self.loaders.values():
            if loader is not None:
                loader.close()


def empty_skip_report(strict=False):
    from kerascv_suite.data.skips import SkipReport

    return SkipReport(strict=strict)


def check_splits(splits, config, data_name=None):
    """The `SkipReport` of a task's splits, checked before anything is written to disk.

    Counts what each split's reader skipped or repaired (`dataset.skipped`); with
    `config.strict`, decodes every sample once and raises on the first skip.

    Args:
        splits: `{"train": dataset, "val": dataset or None, "test": ...}`.
        config: the run's config (`strict`, `data`).
        data_name: what `--data` is called in messages (default `config.data`).

    Returns:
        A `SkipReport` (`strict` as the config), to hand to the loaders and `TaskData`.

    Raises:
        SkipError: `strict` and something was skipped (names the file and entry).
        DataError: a split without a single usable entry.
    """
    from kerascv_suite.data.errors import DataError

    report = empty_skip_report(strict=getattr(config, "strict", False))
    report.collect_datasets(splits)
    for name, dataset in splits.items():
        if dataset is not None and len(dataset) == 0:
            skipped = report.counts().get(name) or report.counts().get("all") or {}
            reasons = ", ".join(f"{count} {reason}" for reason, count in skipped.items())
            raise DataError(f"--data {data_name or config.data}: the {name} split has no "
                            "usable entries" + (f" ({reasons})" if reasons else "")
                            + "; `kcv data check` shows what was found")
    if report.strict:
        seen = set()
        for name, dataset in splits.items():
            if dataset is None or id(dataset) in seen:
                continue
            seen.add(id(dataset))
            for _ in dataset:  # records undecodable images in dataset.skipped
                pass
        report.collect_datasets(splits)
    return report


def collect_evaluation_skips(data, split):
    """Adds what an evaluation pass over `data.splits[split]` skipped to `data.skips`;
    returns the split's count (0 when nothing was skipped)."""
    dataset = data.splits.get(split)
    data.skips.collect(split, getattr(dataset, "skipped", None))
    return sum(data.skips.counts().get(split, {}).values())


@dataclasses.dataclass
class Evaluation:
    """One evaluation of a model on a split (the same for end-of-training and `kcv evaluate`).

    Attributes:
        metrics: named scores, without a split prefix (`{"accuracy": ...}`, `{"ap50": ...}`).
        summary: a one-line human summary.
        sample_inputs, sample_outputs: a couple of model inputs and outputs (the logged
            model's MLflow signature).
        details: the task's full result (confusion matrix, COCO result, samples to draw).
    """

    metrics: dict
    summary: str
    sample_inputs: Any = None
    sample_outputs: Any = None
    details: Any = None

    def prefixed(self, prefix="test_") -> dict:
        return {f"{prefix}{name}": float(value) for name, value in self.metrics.items()}


class Task:
    """Base class of the tasks. Subclasses set the class attributes and implement the
    methods marked "required"."""

    name: str = ""
    config_class: type = TrainConfig
    #: printed after "Test:" and "Done": `{metric key: label}`.
    headline: dict = {}

    # === Data ===

    def load_data(self, config, run_dir: Path, log) -> TaskData:
        """Required: the splits, loaders and fit datasets of `config.data`."""
        raise TypeError(f"{type(self).__name__} must implement load_data")

    # === Model ===

    def build_model(self, config, data: TaskData, log):
        """Required: a fresh (or `--weights`) model for `data`, uncompiled.

        Returns:
            `(model, transferred)`: `transferred` lists the layers loaded from
            `config.weights` (what `--freeze backbone` freezes), or None.
        """
        raise TypeError(f"{type(self).__name__} must implement build_model")

    def compile(self, model, config, lr, epochs, steps_per_epoch):
        """Required: compiles `model` with the task's loss over `epochs` epochs at `lr`."""
        raise TypeError(f"{type(self).__name__} must implement compile")

    def check_model(self, model, config, data: TaskData, source: str):
        """Raises ValueError when a resumed or `--weights` model cannot train on `data`."""

    def prepare_fit(self, model, config, data: TaskData):
        """Hook after the model exists (e.g. fit targets that depend on its outputs)."""

    def epoch_callbacks(self, config, data: TaskData, run_dir: Path, tracker) -> list:
        """Keras callbacks run before each epoch's checkpoint (their `logs` entries are
        monitored, saved and logged)."""
        return []

    # === Evaluation and report ===

    def before_evaluation(self, model, config, data: TaskData, best: Path, log):
        """Hook on the best checkpoint before it is scored (R-CNN fits its SVMs here)."""
        return model

    def evaluate(self, model, config, data: TaskData, split: str, log) -> Evaluation:
        """Required: scores `model` on `split`, in original image pixels."""
        raise TypeError(f"{type(self).__name__} must implement evaluate")

    def write_report(self, evaluation: Evaluation, model, config, data: TaskData, history,
                     folder: Path) -> list:
        """Plots and drawings of the test evaluation; returns the paths written."""
        return []

    def inference_model(self, model, config):
        """The model to log, register and export: the same layers without the training
        state (loss, metrics), carrying the model's metadata."""
        import keras

        from kerascv_suite.models.metadata import describe, with_metadata

        return with_metadata(keras.Model(model.input, model.output, name=model.name),
                             **describe(model))

    def metadata(self, config, data: TaskData) -> dict:
        """What the trained model remembers about itself (see `models.describe`)."""
        return {"task": self.name, "class_names": [str(n) for n in data.class_names],
                "name": config.model_name, "input_shape": list(data.input_shape)}


def build_registered(name, options, **fitted):
    """`models.build(name)` with the config's `model_options` and the arguments the data
    fits (`num_classes`, `input_shape`); a fitted argument equal to the variant's own is not
    passed, so training a recipe on its data builds exactly `build(name)` (metadata too).
    """
    import inspect

    from kerascv_suite.models.registry import build, get_spec

    spec = get_spec(name)
    parameters = inspect.signature(spec.builder).parameters
    arguments = dict(options)
    for key, value in fitted.items():
        default = spec.defaults.get(key, parameters[key].default if key in parameters else None)
        same = default is not None and (list(default) == list(value)
                                        if isinstance(value, (list, tuple)) else default == value)
        if not same:
            arguments[key] = value
    return build(name, **arguments)
