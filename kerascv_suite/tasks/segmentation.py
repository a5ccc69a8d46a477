"""Semantic segmentation: mask folders / VOC / COCO (or the built-in shapes) -> a segmenter.

Per-epoch metrics come from one `ConfusionReport` metric: its state is the confusion matrix
of everything seen since the last reset, so `val_miou`, `val_pixel_accuracy` and
`val_iou_<class>` cover the whole validation split, not a mean of per-batch values.

Semi-supervised training (`mask_fraction` < 1): every training image keeps its image-level
labels (the classes its mask holds), but only a seeded fraction of the images keep their
masks (`masked_indices`); the others' masks become all void (255) after augmentation, so
no pixel loss sees them. Plain segmenters (U-Net, DeconvNet...) then learn from that
fraction alone (same images, same steps); DecoupledNet also learns its classifier from
every image's labels (its `y` is `{"masks", "labels"}`).

The test evaluation (`evaluate_segmenter`, also what `kcv evaluate` runs on a segmenter)
resizes each image to the model's input, resizes the predicted label map back to the image's
own size (nearest) and scores it against the untouched mask (255 = ignore).

This module imports neither Keras nor TensorFlow at import time.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from kerascv_suite.tasks.base import (Evaluation, Task, TaskData, build_registered,
                                      check_splits, collect_evaluation_skips)
from kerascv_suite.tasks.config import TrainConfig

LOSSES = ("ce", "dice", "ce+dice")  # kerascv_suite.losses.segmentation.LOSSES
FORMATS = ("voc", "coco", "masks")
SHAPES_SIZE = 64


@dataclasses.dataclass
class SegmenterConfig(TrainConfig):
    """A `TrainConfig` with segmentation defaults and options.

    Attributes (beyond `TrainConfig`'s):
        loss: `"ce"` (cross-entropy, 255 ignored), `"dice"` or `"ce+dice"`.
        width: the model's filter multiplier (None: the builder's default, the paper's).
        shapes_count: training images of the built-in `shapes` set (val and test get a
            fifth each); its images are generated at `image_size` (64 when unset).
        num_overlays: test images drawn as overlays into the report.
        epoch_overlays: fixed validation images drawn after every epoch into one grid,
            logged to MLflow as `overlays/epoch_NNN.png` (0: none).
        mask_fraction: fraction of the training images whose masks are used, in (0, 1]
            (seeded by `seed`, see `masked_indices`); the others only give image labels.
    """

    task: str | None = "segmentation"
    model: str = "unet"
    data: str = "shapes"
    epochs: int = 20
    batch_size: int = 16
    augment: str | None = "segmentation"
    monitor: str = "val_miou"
    project: str = "runs/segment"
    experiment: str = "kcv-train-segmenter"
    loss: str = "ce"
    width: float | None = None
    shapes_count: int = 800
    num_overlays: int = 8
    epoch_overlays: int = 4
    mask_fraction: float = 1.0

    def __post_init__(self):
        super().__post_init__()
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}. Received: loss={self.loss!r}")
        if self.format is not None and self.format not in FORMATS:
            raise ValueError(f"Segmentation reads masks from {FORMATS}. "
                             f"Received: format={self.format!r}")
        if self.width is not None and self.width <= 0:
            raise ValueError(f"width must be positive. Received: width={self.width}")
        if not 0 < float(self.mask_fraction) <= 1:
            raise ValueError("mask_fraction must be in (0, 1] (1: every training mask). "
                             f"Received: mask_fraction={self.mask_fraction}")

    @property
    def builder_options(self) -> dict:
        options = dict(self.model_options)
        if self.width is not None:
            options["width"] = self.width
        return options


def open_splits(config):
    """`(train, val, test, mask_class_names)`; a folder without train/val splits gets a
    seeded 80/10/10 split."""
    from kerascv_suite.data import make_shapes, read_dataset
    from kerascv_suite.data.splits import check_folder, detect_format, open_splits as split
    from kerascv_suite.tasks.detection import reader_options

    if config.data == "shapes":
        size = config.image_size or SHAPES_SIZE
        count, small = config.shapes_count, max(1, config.shapes_count // 5)
        train = make_shapes(count, size, seed=config.seed, split="train")
        return (train, make_shapes(small, size, seed=config.seed, split="val"),
                make_shapes(small, size, seed=config.seed, split="test"),
                train.mask_class_names)
    root = check_folder(config.data, "shapes")
    fmt = config.format or detect_format(root, "segmentation")
    options = reader_options(fmt, "segmentation", config)
    train, val, test = split(root, fmt, config.seed,
                             lambda name: read_dataset(root, fmt, name, **options))
    return train, val, test, train.mask_class_names


def masked_indices(count, fraction, seed):
    """The sorted indices of the training images whose masks are used: a seeded random
    `round(fraction * count)` of them (at least one), the same for every model trained with
    the same data, fraction and seed."""
    keep = min(count, max(1, int(round(float(fraction) * count))))
    return np.sort(np.random.default_rng(seed).permutation(count)[:keep])


class PartialMasks:
    """A dataset whose samples carry `label` 1 when their mask is used, else 0.

    The mask itself stays in the sample (augmentation and the image labels need it); the
    fit dataset (`partial_targets`) voids the masks of samples labelled 0. Everything else
    (length, class names, skips) is the wrapped dataset's.

    Args:
        dataset: a segmentation dataset.
        indices: the indices whose masks are used (`masked_indices`).
    """

    def __init__(self, dataset, indices):
        self.dataset = dataset
        self.indices = frozenset(int(i) for i in indices)

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        sample = dict(self.dataset[index])
        sample["label"] = int(int(index) in self.indices)
        return sample

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __getattr__(self, name):
        if name in ("dataset", "indices"):  # not set yet (unpickling)
            raise AttributeError(name)
        return getattr(self.dataset, name)


def partial_targets(ds, num_classes, image_labels):
    """Maps a `(images, {"masks", "labels"})` tf.data pipeline (labels: 1 when the mask is
    used) to `(images, masks)` with the unused masks all void (255), or with
    `image_labels` to `(images, {"masks", "labels"})`, `labels` `(batch, num_classes - 1)`
    the classes 1.. present in each image's (augmented, whole) mask."""
    import tensorflow as tf

    def targets(images, y):
        masks = y["masks"]
        used = tf.reshape(tf.cast(y["labels"], tf.bool), [-1, 1, 1])
        kept = tf.where(used, masks, tf.constant(255, masks.dtype))
        if not image_labels:
            return images, kept
        classes = tf.range(1, num_classes, dtype=tf.int32)
        present = tf.reduce_any(tf.equal(tf.cast(masks, tf.int32)[..., None], classes),
                                axis=[1, 2])
        return images, {"masks": kept, "labels": tf.cast(present, tf.float32)}

    return ds.map(targets)


def uses_image_labels(model_name):
    """Whether the registered model trains on image labels too (DecoupledNet)."""
    from kerascv_suite.models.registry import get_spec
    from kerascv_suite.models.segmentation.decouplednet import decouplednet

    return get_spec(model_name).builder is decouplednet


def predict_label_maps(model, images, batch_size):
    """Argmax label maps of `model` on `(N, H, W, C)` images (the last batch padded)."""
    out = []
    for start in range(0, len(images), batch_size):
        part = images[start:start + batch_size]
        pad = batch_size - len(part)
        if pad:
            part = np.concatenate([part, np.zeros((pad, *part.shape[1:]), part.dtype)])
        probabilities = np.asarray(model.predict_on_batch(part.astype("float32")))
        out.append(probabilities[:len(part) - pad].argmax(-1))
    return np.concatenate(out)


@dataclasses.dataclass
class SegmentationScores:
    scores: object  # kerascv_suite.metrics.segmentation scores (miou, pixel_accuracy, ...)
    class_names: list
    samples: list  # (image, mask, prediction) in original pixels, for overlays
    sample_inputs: object = None
    sample_outputs: object = None

    def metrics(self) -> dict:
        metrics = {"miou": float(self.scores.miou),
                   "pixel_accuracy": float(self.scores.pixel_accuracy)}
        for name, iou in zip(self.class_names, self.scores.per_class_iou):
            metrics[f"iou_{name.replace(' ', '_')}"] = float(iou)
        return metrics


def evaluate_segmenter(model, dataset, class_names, batch_size, keep=0) -> SegmentationScores:
    """THE segmenter evaluation (end of training and `kcv evaluate`): one confusion matrix
    over the split, in each image's own pixels (255 in a mask is ignored).

    Args:
        model: a segmenter mapping `(B, h, w, C)` images to `(B, h, w, num_classes)`.
        dataset: samples with `image` and `mask` at the image's own size.
        class_names: names of the mask values `0..num_classes-1`.
        batch_size: images per predict call.
        keep: samples kept for overlays.
    """
    import cv2

    from kerascv_suite.data.dataset import batches
    from kerascv_suite.data.image_io import resize_image
    from kerascv_suite.metrics.segmentation import ConfusionAccumulator

    height, width, channels = model.inputs[0].shape[1:4]
    num_classes = model.output_shape[-1]
    accumulator = ConfusionAccumulator(num_classes)
    samples, first = [], None
    for batch in batches(dataset, batch_size):
        images = np.stack([rgb_for(s["image"], channels, (height, width)) for s in batch])
        predictions = predict_label_maps(model, images, batch_size)
        if first is None:
            first = images[:2].astype("float32")
        for sample, prediction in zip(batch, predictions):
            mask = np.asarray(sample["mask"])
            mask = mask[..., 0] if mask.ndim == 3 else mask
            if prediction.shape != mask.shape:
                prediction = cv2.resize(prediction.astype(np.uint8),
                                        (mask.shape[1], mask.shape[0]),
                                        interpolation=cv2.INTER_NEAREST)
            accumulator.update(mask[None], prediction[None])
            if len(samples) < keep:
                image = np.asarray(sample["image"])
                samples.append((resize_image(image, mask.shape) if image.shape[:2] !=
                                mask.shape else image, mask, prediction))
    if first is None:
        raise ValueError("The evaluation split is empty; nothing to evaluate.")
    outputs = np.asarray(model.predict_on_batch(first))
    return SegmentationScores(accumulator.scores(), list(class_names), samples, first, outputs)


def rgb_for(image, channels, size):
    """`image` resized to `size` with the model's channel count."""
    from kerascv_suite.data.image_io import resize_image

    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    if image.shape[-1] < channels:
        image = np.repeat(image[..., :1], channels, axis=-1)
    return resize_image(image[..., :channels], size).reshape(*size, channels)


class SegmentationTask(Task):
    """FCN, DeconvNet, SegNet, U-Net, DecoupledNet: per-pixel classes, scored by mIoU."""

    name = "segmentation"
    config_class = SegmenterConfig
    headline = {"test_miou": "test mIoU", "test_pixel_accuracy": "pixel accuracy"}

    def load_data(self, config, run_dir, log) -> TaskData:
        from kerascv_suite.data import DataLoader, build_augmenter
        from kerascv_suite.data.splits import fit_dataset
        from kerascv_suite.models.registry import get_spec

        reference = get_spec(config.model_name).input_shape
        channels = reference[2] if len(reference) == 3 else 3
        size = (config.image_size,) * 2 if config.image_size else tuple(reference[:2])
        train, val, test, class_names = open_splits(config)
        skips = check_splits({"train": train, "val": val, "test": test}, config)
        image_labels = uses_image_labels(config.model_name)
        partial = image_labels or config.mask_fraction < 1
        if partial:
            masked = masked_indices(len(train), config.mask_fraction, config.seed)
            log(f"Masks of {len(masked)} of {len(train)} training images used "
                f"(mask_fraction {config.mask_fraction:g}, seed {config.seed})"
                + ("; image labels of all." if image_labels else "."))
            train_source = PartialMasks(train, masked)
        train_aug = build_augmenter(config.augment or "segmentation_eval", image_size=size,
                                    **(config.augment_options if config.augment else {}))
        eval_aug = build_augmenter("segmentation_eval", image_size=size)

        def loader(dataset, augment, shuffle, workers, split, keys=("images", "masks")):
            return DataLoader(dataset, config.batch_size, augment=augment,
                              keys=keys, shuffle=shuffle, seed=config.seed,
                              num_workers=workers, skips=skips, split=split)

        if partial:
            train_loader = loader(train_source, train_aug, True, config.workers, "train",
                                  ("images", "masks", "labels"))
            train_fit = partial_targets(fit_dataset(train_loader, channels,
                                                    y=("masks", "labels")),
                                        len(class_names), image_labels)
        else:
            train_loader = loader(train, train_aug, True, config.workers, "train")
            train_fit = fit_dataset(train_loader, channels, y="masks")
        loaders = {"train": train_loader,
                   "val": loader(val, eval_aug, False, config.workers, "val")}
        val_fit = fit_dataset(loaders["val"], channels, y="masks")
        if image_labels:
            val_fit = partial_targets(val_fit.map(lambda images, masks: (
                images, {"masks": masks, "labels": masks[:, 0, 0] * 0 + 1})),
                len(class_names), True)
        return TaskData(splits={"train": train, "val": val, "test": test}, loaders=loaders,
                        class_names=[str(n) for n in class_names],
                        input_shape=(*size, channels), train=train_fit, val=val_fit,
                        skips=skips)

    def build_model(self, config, data, log):
        from kerascv_suite.training import finetune

        num_classes = len(data.class_names)
        if config.weights:
            model, transferred = finetune.build_finetune_model(
                config.model_name, config.weights, num_classes, data.input_shape,
                class_names=data.class_names)
            log(f"Fine-tuning: {len(transferred)} layers loaded from {config.weights}.")
        else:
            model, transferred = build_registered(
                config.model_name, config.builder_options, num_classes=num_classes,
                input_shape=data.input_shape), None
        self.check_model(model, config, data, config.model)
        return model, transferred

    def check_model(self, model, config, data, source):
        out_shape = tuple(model.output_shape[1:3])
        if out_shape != tuple(data.input_shape[:2]):
            raise ValueError(f"{source} maps {data.input_shape[:2]} inputs to {out_shape} "
                             "masks; training needs outputs of the input's size (use the "
                             f"padded form, e.g. unet). Received: model={config.model!r}")
        if model.output_shape[-1] != len(data.class_names):
            raise ValueError(f"Class mismatch: {source} predicts {model.output_shape[-1]} "
                             f"classes but the masks have {len(data.class_names)}: "
                             f"{data.class_names}. Received: model={config.model!r}")

    def compile(self, model, config, lr, epochs, steps_per_epoch):
        from kerascv_suite.losses.segmentation import segmentation_loss
        from kerascv_suite.metrics.segmentation import ConfusionReport
        from kerascv_suite.models.metadata import describe
        from kerascv_suite.models.segmentation.decouplednet import DecoupledNet
        from kerascv_suite.training.runner import make_optimizer

        num_classes = model.output_shape[-1]
        names = describe(model).get("class_names") or [str(i) for i in range(num_classes)]
        metric = ConfusionReport(num_classes, [n.replace(" ", "_") for n in names])
        # DecoupledNet computes its own two losses (DecoupledNet.compute_loss).
        loss = None if isinstance(model, DecoupledNet) else segmentation_loss(config.loss)
        model.compile(optimizer=make_optimizer(config, lr, epochs, steps_per_epoch),
                      loss=loss, metrics=[metric])

    def epoch_callbacks(self, config, data, run_dir, tracker):
        """Draws `config.epoch_overlays` fixed validation images after every epoch (image |
        truth | prediction per row) into `overlays/epoch_NNN.png` and MLflow."""
        import keras

        from kerascv_suite.data import write_image
        from kerascv_suite.data.loader import load_batch
        from kerascv_suite.visualization import overlay_panel

        loader = data.loaders["val"]
        count = min(config.epoch_overlays, len(loader.dataset))
        if not count:
            return []
        batch, _, _ = load_batch(loader.dataset, loader.augment, range(count), 0, loader.seed,
                                 ("images", "masks"), loader.max_boxes)
        if batch is None:  # every sample unreadable: nothing to draw
            return []
        images, masks = batch["images"][..., : data.input_shape[-1]], batch["masks"]
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

        return [EpochOverlays()]

    def evaluate(self, model, config, data, split, log) -> Evaluation:
        result = evaluate_segmenter(model, data.splits[split], data.class_names,
                                    config.batch_size, keep=config.num_overlays)
        metrics = result.metrics()
        pixels = int(result.scores.confusion_matrix.sum())
        skipped = collect_evaluation_skips(data, split)
        return Evaluation(metrics, f"mIoU {metrics['miou']:.4f}, pixel accuracy "
                                   f"{metrics['pixel_accuracy']:.4f} ({pixels} pixels"
                                   f"{f', {skipped} skipped' if skipped else ''})",
                          sample_inputs=result.sample_inputs,
                          sample_outputs=result.sample_outputs, details=result)

    def write_report(self, evaluation, model, config, data, history, folder):
        from kerascv_suite.data import write_image
        from kerascv_suite.visualization import (overlay_panel, plot_confusion_matrix,
                                                 plot_curves)

        result = evaluation.details
        folder.mkdir(parents=True, exist_ok=True)
        paths = [folder / "curves.png", folder / "confusion.png"]
        plot_curves(history, paths[0])
        plot_confusion_matrix(result.scores.confusion_matrix,
                              [n.replace(" ", "_") for n in data.class_names], paths[1],
                              title="pixel confusion matrix (test)")
        for index, (image, mask, pred) in enumerate(result.samples):
            path = folder / f"overlay_{index}.png"
            write_image(path, overlay_panel(image, mask, pred))
            paths.append(path)
        return paths
