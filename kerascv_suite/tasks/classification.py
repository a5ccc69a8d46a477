"""Image classification: class folders (or the built-in digits) -> a softmax classifier.

Example:
    >>> from kerascv_suite.tasks import get_task, load_config
    >>> from kerascv_suite.training.runner import run
    >>> result = run(get_task("classification"), load_config(model="lenet5", epochs=3))
    >>> result.test_metrics["test_accuracy"]

This module imports neither Keras nor TensorFlow at import time.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from kerascv_suite.tasks.base import (Evaluation, Task, TaskData, build_registered,
                                      check_splits, collect_evaluation_skips)
from kerascv_suite.tasks.config import TrainConfig


@dataclasses.dataclass
class ClassifierConfig(TrainConfig):
    """A `TrainConfig` of classification (its fields are the base's)."""

    task: str | None = "classification"


def open_splits(config, channels):
    """The train, val and test datasets of `config.data`.

    `digits` has a fixed split. A folder of class folders uses its `train/`, `val/` (or
    `valid/`) and `test/` sub-folders when they exist; otherwise a seeded 80/10/10 split of
    the whole folder.
    """
    if config.data == "digits":
        from kerascv_suite.data.builtin.digits import load_digits

        return load_digits("train"), load_digits("val"), load_digits("test")
    from kerascv_suite.data.formats.folders import read_folders
    from kerascv_suite.data.splits import SplitView, check_folder, split_indices

    root = check_folder(config.data, "digits")
    fmt = config.format or "folders"
    if fmt != "folders":
        raise ValueError(f"Classification trains on class folders (--format folders); {fmt} "
                         f"datasets carry boxes or masks (train a detector or a segmenter). "
                         f"Received: format={fmt!r}")
    if (root / "train").is_dir():
        train = read_folders(root, "train", channels=channels)
        names = train.class_names
        val_name = next((s for s in ("val", "valid", "validation") if (root / s).is_dir()),
                        None)
        val = read_folders(root, val_name, class_names=names, channels=channels) \
            if val_name else None
        test = read_folders(root, "test", class_names=names, channels=channels) \
            if (root / "test").is_dir() else val
        return train, val, test
    full = read_folders(root, channels=channels)
    train, val, test = split_indices(len(full), config.seed)
    return SplitView(full, train), SplitView(full, val), SplitView(full, test)


def model_input(config):
    """`(size, channels)` the model is trained at: `image_size` or the model's own."""
    from kerascv_suite.models.registry import get_spec

    reference = get_spec(config.model_name).input_shape
    channels = reference[2] if len(reference) == 3 else 3
    size = (config.image_size, config.image_size) if config.image_size else tuple(reference[:2])
    return size, channels


class ClassificationTask(Task):
    """Softmax classifiers (LeNet-5 ... ResNet, SqueezeNet) trained with cross-entropy."""

    name = "classification"
    config_class = ClassifierConfig
    headline = {"test_accuracy": "test_accuracy", "test_loss": "test_loss"}

    def load_data(self, config, run_dir, log) -> TaskData:
        """Opens the splits and wraps them in parallel `DataLoader`s (augmenting train).

        Images keep the model's channel count from reading on (folders are read with it;
        digits are 1-channel), so grayscale batches reach a 1-channel model as they are.
        """
        from kerascv_suite.data import DataLoader, build_augmenter
        from kerascv_suite.data.splits import fit_dataset

        size, channels = model_input(config)
        train, val, test = open_splits(config, channels)
        skips = check_splits({"train": train, "val": val, "test": test}, config)
        if config.augment:
            train_aug = build_augmenter(config.augment, image_size=size,
                                        **(config.augment_options or {}))
        else:
            train_aug = build_augmenter("classification_eval", image_size=size)
        eval_aug = build_augmenter("classification_eval", image_size=size)

        def loader(dataset, augment, shuffle, workers, split):
            return DataLoader(dataset, config.batch_size, augment=augment, shuffle=shuffle,
                              seed=config.seed, num_workers=workers, skips=skips, split=split)

        loaders = {"train": loader(train, train_aug, True, config.workers, "train"),
                   "val": loader(val, eval_aug, False, config.workers, "val") if val else None}
        return TaskData(
            splits={"train": train, "val": val, "test": test or val},
            loaders=loaders,
            class_names=list(train.class_names),
            input_shape=(*size, channels),
            train=fit_dataset(loaders["train"], channels),
            val=fit_dataset(loaders["val"], channels) if val else None,
            skips=skips,
        )

    def build_model(self, config, data, log):
        from kerascv_suite.training import finetune

        num_classes = len(data.class_names)
        if config.weights:
            model, transferred = finetune.build_finetune_model(
                config.model_name, config.weights, num_classes, data.input_shape,
                class_names=data.class_names)
            log(f"Fine-tuning: {len(transferred)} layers loaded from {config.weights}; "
                f"new head for {num_classes} classes.")
            return model, transferred
        return build_registered(config.model_name, config.model_options,
                                num_classes=num_classes, input_shape=data.input_shape), None

    def compile(self, model, config, lr, epochs, steps_per_epoch):
        """Sparse cross-entropy; accuracy (and top-5 beyond 5 classes)."""
        import keras

        from kerascv_suite.training.runner import make_optimizer

        metrics = ["accuracy"]
        if model.output_shape[-1] > 5:
            metrics.append(keras.metrics.SparseTopKCategoricalAccuracy(5, name="top5_accuracy"))
        model.compile(optimizer=make_optimizer(config, lr, epochs, steps_per_epoch),
                      loss="sparse_categorical_crossentropy", metrics=metrics)

    def check_model(self, model, config, data, source):
        count = model.output_shape[-1]
        if count != len(data.class_names):
            raise ValueError(f"Class mismatch: the model ({source}) predicts {count} classes "
                             f"but the data has {len(data.class_names)}. "
                             f"Received: model with {count} classes")

    def evaluate(self, model, config, data, split, log) -> Evaluation:
        """The classification evaluation path of `kcv evaluate` (`predict_dataset`): each
        image of the split resized to the model's input (bilinear), no augmentation."""
        from kerascv_suite.models.classification.inference import ClassifierInput, \
            predict_dataset
        from kerascv_suite.training.report import classification_metrics

        member = ClassifierInput(model, None, data.input_shape[:2])
        probabilities, labels, images = predict_dataset(
            [member], data.splits[split], config.batch_size, keep_images=25,
            log=lambda *_: None)
        metrics = classification_metrics(probabilities, labels, prefix="")
        summary = ", ".join(f"{split}_{k} {v:.4f}" for k, v in metrics.items())
        skipped = collect_evaluation_skips(data, split)
        return Evaluation(metrics, f"{summary} ({len(labels)} images"
                                   f"{f', {skipped} skipped' if skipped else ''})",
                          sample_inputs=images[:4], sample_outputs=probabilities[:4],
                          details={"probabilities": probabilities, "labels": labels,
                                   "images": images})

    def write_report(self, evaluation, model, config, data, history, folder: Path):
        from kerascv_suite.training.report import write_report

        d = evaluation.details
        return write_report(folder, history=history, probabilities=d["probabilities"],
                            labels=d["labels"], images=d["images"],
                            class_names=data.class_names, model=model)
