"""Train a semantic segmentation model end to end, on the classification pipeline's engine.

The run itself (run folder, resume, MLflow run, checkpoints, NaN stop, early stopping,
registration) is `train_classifier.run`; this module supplies the segmentation steps it
calls: `load_data` (image + mask loaders), `prepare_model` (build with the mask classes,
compile with a segmentation loss and a confusion-matrix metric) and `finalize` (test-split
scores, overlays, the logged inference model).

Per-epoch metrics come from one `ConfusionReport` metric: its state is the confusion matrix of
everything seen since the last reset, so `val_miou`, `val_pixel_accuracy` and
`val_iou_<class>` cover the whole validation split, not a mean of per-batch values.

Example:
    >>> from kerascv_suite.pipelines.train_segmenter import SegmenterConfig, run
    >>> result = run(SegmenterConfig.from_yaml(None, model="unet", epochs=3, width=0.25))
    >>> result.test_metrics["test_miou"]

This module imports neither Keras nor TensorFlow at import time.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from kerascv_suite.pipelines import train_classifier as _base
# What `apps/train_cmd.run_training` reads from a task pipeline besides its entry points.
from kerascv_suite.pipelines.train_classifier import (  # noqa: F401
    TrackingUnavailable,
    TrainingDiverged,
    check_backend,
)

LOSSES = ("ce", "dice", "ce+dice")  # kerascv_suite.losses.segmentation.LOSSES
FORMATS = ("voc", "coco", "masks")
PROJECT = "runs/segment"


@dataclasses.dataclass
class SegmenterConfig(_base.TrainConfig):
    """A `TrainConfig` with segmentation defaults and options.

    Attributes (beyond `TrainConfig`'s):
        loss: `"ce"` (cross-entropy, 255 ignored), `"dice"` or `"ce+dice"`.
        width: the model's filter multiplier (None: the builder's default, the paper's).
        model_options: other builder arguments of a fresh model (e.g. `batch_norm: true`).
        shapes_count: training images of the built-in `shapes` set (val and test get a
            fifth each); its images are generated at `image_size` (64 when unset).
        num_overlays: test images drawn as overlays into the report.
        epoch_overlays: fixed validation images drawn after every epoch into one grid,
            logged to MLflow as `overlays/epoch_NNN.png` (0: none).
    """

    model: str = "unet"
    data: str = "shapes"
    epochs: int = 20
    batch_size: int = 16
    augment: str | None = "segmentation"
    monitor: str = "val_miou"
    project: str = PROJECT
    experiment: str = "kcv-train-segmenter"
    loss: str = "ce"
    width: float | None = None
    model_options: dict = dataclasses.field(default_factory=dict)
    shapes_count: int = 800
    num_overlays: int = 8
    epoch_overlays: int = 4

    def __post_init__(self):
        super().__post_init__()
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}. Received: loss={self.loss!r}")
        if self.format is not None and self.format not in FORMATS:
            raise ValueError(f"Segmentation reads masks from {FORMATS}. "
                             f"Received: format={self.format!r}")
        if self.width is not None and self.width <= 0:
            raise ValueError(f"width must be positive. Received: width={self.width}")

    @classmethod
    def from_yaml(cls, path=None, **overrides) -> SegmenterConfig:
        return load_config(path, **overrides)


load_config, load_run_config, resolve_resume_dir, run = _base.task_entry_points(
    SegmenterConfig, PROJECT, __name__)


# === Data ===


def detect_format(root) -> str:
    root = Path(root)
    if (root / "masks").is_dir():
        return "masks"
    if (root / "SegmentationClass").is_dir() or (root / "JPEGImages").is_dir():
        return "voc"
    if (root / "annotations").is_dir() or root.suffix == ".json":
        return "coco"
    raise ValueError(f"Cannot tell the format of {root}; pass --format "
                     f"({', '.join(FORMATS)}). Received: data={str(root)!r}")


def open_splits(config):
    """`(train, val, test, mask_class_names)`; a dataset without train/val splits gets a
    seeded 80/10/10 split."""
    from kerascv_suite.data import list_splits, make_shapes, read_dataset

    if config.data == "shapes":
        size = config.image_size or 64
        count, small = config.shapes_count, max(1, config.shapes_count // 5)
        train = make_shapes(count, size, seed=config.seed, split="train")
        return (train, make_shapes(small, size, seed=config.seed, split="val"),
                make_shapes(small, size, seed=config.seed, split="test"),
                train.mask_class_names)
    root = Path(config.data)
    if not root.exists():
        raise FileNotFoundError(f"--data must be 'shapes' or a dataset folder. "
                                f"Received: data={config.data!r}")
    fmt = config.format or detect_format(root)
    splits = [s for s in list_splits(root, fmt) if s is not None]
    val_name = next((s for s in ("val", "valid", "validation") if s in splits), None)
    if "train" in splits and val_name:
        train = read_dataset(root, fmt, "train")
        val = read_dataset(root, fmt, val_name)
        test = read_dataset(root, fmt, "test") if "test" in splits else val
        return train, val, test, train.mask_class_names
    full = read_dataset(root, fmt, splits[0] if splits else None)
    train, val, test = _base._split_indices(len(full), config.seed)
    view = _base._View
    return view(full, train), view(full, val), view(full, test), full.mask_class_names


@dataclasses.dataclass
class SegmenterData(_base.ClassifierData):
    """`ClassifierData` whose targets are masks; `class_names` are the mask values' names."""

    def test_batches(self):
        for batch in self.test_loader.iter_epoch(0):
            yield batch["images"][..., : self.input_shape[-1]], batch["masks"]


def load_data(config) -> SegmenterData:
    from kerascv_suite.data import DataLoader, build_augmenter
    from kerascv_suite.models.registry import get_spec

    reference = _base.reference_input_shape(get_spec(config.model))
    channels = reference[2] if len(reference) == 3 else 3
    size = (config.image_size,) * 2 if config.image_size else tuple(reference[:2])
    train, val, test, class_names = open_splits(config)
    keys = ("images", "masks")
    train_aug = build_augmenter(config.augment or "segmentation_eval", image_size=size,
                                **(config.augment_options or {} if config.augment else {}))
    eval_aug = build_augmenter("segmentation_eval", image_size=size)

    def loader(ds, augment, shuffle, workers):
        return DataLoader(ds, config.batch_size, augment=augment, keys=keys, shuffle=shuffle,
                          seed=config.seed, num_workers=workers)

    train_loader = loader(train, train_aug, True, config.workers)
    val_loader = loader(val, eval_aug, False, config.workers)
    test_loader = loader(test, eval_aug, False, 0)
    return SegmenterData(
        train_loader=train_loader,
        val_loader=val_loader,
        test_loader=test_loader,
        train=_base._fit_dataset(train_loader, channels, y="masks"),
        val=_base._fit_dataset(val_loader, channels, y="masks"),
        class_names=list(class_names),
        input_shape=(*size, channels),
    )


# === Model ===

_REPORT_CLASS = []


def confusion_report_class():
    """`ConfusionReport`: a `MeanIoUFromConfusion` whose result is a dict of `miou`,
    `pixel_accuracy` and `iou_<class>` (Keras logs every entry, `val_`-prefixed on the
    validation split). Defined on first use so this module imports no Keras."""
    if _REPORT_CLASS:
        return _REPORT_CLASS[0]
    import keras

    from kerascv_suite.metrics.segmentation import MeanIoUFromConfusion, _scores_from_matrix

    @keras.saving.register_keras_serializable(package="kerascv_suite")
    class ConfusionReport(MeanIoUFromConfusion):
        def __init__(self, num_classes, class_names=None, name="report", **kwargs):
            super().__init__(num_classes, name=name, **kwargs)
            self.class_names = list(class_names or [str(i) for i in range(num_classes)])

        def result(self):
            miou, accuracy, per_class = _scores_from_matrix(self.confusion)
            out = {"miou": miou, "pixel_accuracy": accuracy}
            for index, class_name in enumerate(self.class_names):
                out[f"iou_{class_name}"] = per_class[index]
            return out

        def get_config(self):
            return {**super().get_config(), "class_names": self.class_names}

    _REPORT_CLASS.append(ConfusionReport)
    return ConfusionReport


def compile_segmenter(model, config, lr, epochs, steps_per_epoch):
    from kerascv_suite.losses.segmentation import segmentation_loss

    num_classes = model.output_shape[-1]
    class_names = getattr(model, "_kcv_class_names", None)
    metric = confusion_report_class()(num_classes, class_names)
    _base.compile_model(model, config, lr, epochs, steps_per_epoch,
                        loss=segmentation_loss(config.loss), metrics=[metric])


def prepare_model(config, data, state, run_dir, log=print):
    """`train_classifier.prepare_model` with the mask classes, `width` and the segmentation
    loss and metric (resume and fine-tuning work as there)."""
    import kerascv_suite.losses.segmentation  # noqa: F401  (registers the loss for loading)

    confusion_report_class()  # registers the metric for loading
    overrides = dict(config.model_options or {})
    if config.width is not None:
        overrides["width"] = config.width

    def compile_fn(model, *args):
        model._kcv_class_names = [n.replace(" ", "_") for n in data.class_names]
        compile_segmenter(model, *args)

    model, second_phase = _base.prepare_model(config, data, state, run_dir, log,
                                              compile_fn=compile_fn, build_overrides=overrides)
    out_shape = tuple(model.output_shape[1:3])
    if out_shape != tuple(data.input_shape[:2]):
        raise ValueError(f"{config.model} maps {data.input_shape[:2]} inputs to {out_shape} "
                         "masks; training needs outputs of the input's size (use the padded "
                         f"form, e.g. unet). Received: model={config.model!r}")
    return model, second_phase


# === Per-epoch overlays ===


def overlay_samples(data, count):
    """The first `count` validation images (the test split's if there is no validation
    split) and their masks, as the model sees them: `(images, masks)` numpy arrays."""
    from kerascv_suite.data.loader import load_batch

    loader = data.val_loader if data.val_loader is not None else data.test_loader
    count = min(count, len(loader.dataset))
    batch, _, _ = load_batch(loader.dataset, loader.augment, range(count), 0, loader.seed,
                             ("images", "masks"), loader.max_boxes)
    if batch is None:  # every sample unreadable: nothing to draw
        return None, None
    return batch["images"][..., : data.input_shape[-1]], batch["masks"]


def epoch_callbacks(config, data, run_dir, tracker):
    """A callback that draws `config.epoch_overlays` fixed validation images after every
    epoch (image | truth | prediction per row) into `overlays/epoch_NNN.png` in the run
    folder and MLflow, so training can be watched image by image."""
    import keras
    import numpy as np

    from kerascv_suite.data import write_image
    from kerascv_suite.pipelines.segment_folder import overlay_panel

    if not config.epoch_overlays:
        return ()
    images, masks = overlay_samples(data, config.epoch_overlays)
    if images is None:
        return ()
    folder = Path(run_dir) / "overlays"

    class EpochOverlays(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            # A direct call, not predict_on_batch: under a distribution strategy that
            # returns each row once per replica.
            probabilities = keras.ops.convert_to_numpy(self.model(images, training=False))
            rows = [overlay_panel(image, mask, pred) for image, mask, pred in
                    zip(images, masks, probabilities.argmax(-1))]
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"epoch_{epoch + 1:03d}.png"
            write_image(path, np.concatenate(rows, axis=0))
            tracker.log_artifact(path, "overlays")

    return (EpochOverlays(),)


# === Report ===


def finalize(config, data, state, run_dir, tracker, log=print):
    """Scores the best checkpoint on the test split (one confusion matrix), draws overlays
    and curves, logs the inference model (no training state) and registers it."""
    import keras
    import numpy as np

    from kerascv_suite.data import write_image
    from kerascv_suite.metrics.segmentation import ConfusionAccumulator
    from kerascv_suite.pipelines.segment_folder import overlay_panel
    from kerascv_suite.training.plots import plot_confusion_matrix, plot_curves
    from kerascv_suite.training.state import BEST, LAST, checkpoint_dir

    folder = checkpoint_dir(run_dir)
    best = folder / BEST if (folder / BEST).is_file() else folder / LAST
    model = keras.saving.load_model(best)
    num_classes = model.output_shape[-1]
    accumulator = ConfusionAccumulator(num_classes)
    samples = []
    for images, masks in data.test_batches():
        probabilities = np.asarray(model.predict_on_batch(images))
        predictions = probabilities.argmax(-1)
        accumulator.update(masks, predictions)
        for image, mask, pred in zip(images, masks, predictions):
            if len(samples) < config.num_overlays:
                samples.append((image, mask, pred))
        sample_images, sample_outputs = images[:2], probabilities[:2]
    scores = accumulator.scores()
    names = [n.replace(" ", "_") for n in data.class_names]
    test_metrics = {"test_miou": scores.miou, "test_pixel_accuracy": scores.pixel_accuracy}
    for name, iou in zip(names, scores.per_class_iou):
        test_metrics[f"test_iou_{name}"] = float(iou)
    tracker.log_metrics(test_metrics)
    log(f"Test: mIoU {scores.miou:.4f}, pixel accuracy {scores.pixel_accuracy:.4f} "
        f"({int(scores.confusion_matrix.sum())} pixels, {best.name})")
    plots = Path(run_dir) / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    paths = [plots / "curves.png", plots / "confusion.png"]
    plot_curves(state.history, paths[0])
    plot_confusion_matrix(scores.confusion_matrix, names, paths[1],
                          title="pixel confusion matrix (test)")
    for index, (image, mask, pred) in enumerate(samples):
        path = plots / f"overlay_{index}.png"
        write_image(path, overlay_panel(image, mask, pred))
        paths.append(path)
    for path in paths:
        tracker.log_artifact(path, "report")
    tracker.log_artifact(Path(run_dir) / "config.yaml")
    tracker.log_artifact(Path(run_dir) / "results.csv")
    # The logged model is for inference: the same layers without the training loss and
    # metric, so loading it needs nothing but Keras and kerascv_suite.layers.
    inference = keras.Model(model.inputs, model.outputs, name=model.name)
    model_uri = tracker.log_model(inference, sample_images, sample_outputs)
    version = None
    if config.register:
        version = tracker.register(model_uri, config.register, config.alias)
        alias = f" (alias @{config.alias})" if config.alias else ""
        log(f"Registered {config.register} version {version}{alias}.")
    return {"test_metrics": test_metrics, "model_uri": model_uri, "registered_version": version}
