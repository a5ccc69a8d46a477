"""Train a keypoint heatmap model (the Stacked Hourglass) on the classification engine.

The run itself (run folder, resume, MLflow run, checkpoints, NaN stop, early stopping,
registration) is `train_classifier.run`; this module supplies the keypoint steps it calls:
`load_data`, `prepare_model`, `epoch_callbacks` (validation PCK each epoch) and `finalize`.

Protocol (top-down, as MPII single-person pose): every annotated object is one sample. Its
image is cropped around the object's ground-truth box (a square of `crop_margin` times the
box's longer side, centred on the box) and resized to `image_size`, as the hourglass paper
crops around each person's given centre and scale. Training crops are jittered with the
paper's augmentation (rotation +-30 degrees, scale 0.75..1.25, horizontal flips).

Keypoints of the built-in `shapes` set are polygon corners: 4 per square, 3 per triangle.
Circles have no corners (the set's circle points sit at a random angle that the image does not
show), so circles are left out. A corner has no identity (drawing order starts at the
object's random rotation, and a square turned by 90 degrees looks the same), so one heatmap
channel per corner index would have no learnable target. The model instead predicts ONE
class-agnostic "corner" channel; an object with `n` corners is decoded to the channel's `n`
highest peaks, matched to its corners by least total distance (`match_unordered`), then
scored with PCK normalised by the object's box: correct if within
`alpha * max(box height, box width)` (Yang & Ramanan, TPAMI 2013).

Loss: the paper's intermediate supervision, the same MSE against Gaussian heatmaps on every
stack's output, equally weighted. The Gaussians' sigma is `sigma` heatmap cells: 1 by default,
as the paper; the recipe uses 2, which learns much faster at 16x16 heatmaps (see
recipes/hourglass_shapes.yaml).

Example:
    >>> from kerascv_suite.pipelines.train_keypoints import KeypointConfig, run
    >>> result = run(KeypointConfig.from_yaml(None, epochs=3))
    >>> result.test_metrics["test_pck"]

This module imports neither Keras nor TensorFlow at import time.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from kerascv_suite.data.keypoint_crops import ObjectCrops, TopDownCrop
from kerascv_suite.metrics.keypoints import evaluate_pck, gaussian_heatmaps, heatmap_outputs
from kerascv_suite.pipelines import train_classifier as _base
from kerascv_suite.visualization.keypoints import draw_keypoint_samples

# What `apps/train_cmd.run_training` reads from a task pipeline besides its entry points.
from kerascv_suite.pipelines.train_classifier import (  # noqa: F401
    TrackingUnavailable,
    TrainingDiverged,
    check_backend,
)

PROJECT = "runs/keypoints"
AUGMENTS = ("keypoints",)
# Shapes classes that have corners; circles have none.
CORNERED = ("square", "triangle")
CHANNEL_NAMES = ("corner",)
# Logged as val_/test_ `pck` (PCK@0.1), `pck_0.05` and `pck_0.2`.
PCK_ALPHAS = (0.05, 0.1, 0.2)
STRIDE = 4  # input pixels per heatmap cell of the hourglass


@dataclasses.dataclass
class KeypointConfig(_base.TrainConfig):
    """A `TrainConfig` with keypoint defaults and options.

    Attributes (beyond `TrainConfig`'s):
        image_size: side of the square object crops the model sees (64 by default).
        augment: `"keypoints"` (the paper's rotation, scale and flip jitter of the crops) or
            None; `augment_options` may set `rotate` (degrees), `scale` (`[low, high]`) and
            `hflip` (probability).
        sigma: standard deviation of the target Gaussians, in heatmap cells (1 in the paper).
        crop_margin: crop side as a multiple of the object box's longer side.
        model_options: builder arguments of a fresh model (`num_stacks`, `filters`,
            `depth`).
        shapes_count: training images of the built-in `shapes` set (val and test get a
            fifth each).
        shapes_size: side of the generated shapes images the crops are cut from.
        num_samples: test crops drawn with their predicted and true corners.
    """

    model: str = "hourglass"
    data: str = "shapes"
    epochs: int = 20
    batch_size: int = 16
    image_size: int | None = 64
    augment: str | None = "keypoints"
    monitor: str = "val_pck"
    project: str = PROJECT
    experiment: str = "kcv-train-keypoints"
    sigma: float = 1.0
    crop_margin: float = 1.25
    model_options: dict = dataclasses.field(default_factory=dict)
    shapes_count: int = 800
    shapes_size: int = 128
    num_samples: int = 8

    def __post_init__(self):
        super().__post_init__()
        if self.data != "shapes":
            raise ValueError("train-keypoints trains on the built-in shapes set (polygon "
                             f"corners). Received: data={self.data!r}")
        if self.augment is not None and self.augment not in AUGMENTS:
            raise ValueError(f"augment must be None or one of {AUGMENTS}. "
                             f"Received: augment={self.augment!r}")
        unknown = set(self.augment_options or {}) - {"rotate", "scale", "hflip"}
        if unknown:
            raise ValueError("augment_options of keypoints are rotate, scale and hflip. "
                             f"Received: {sorted(unknown)}")
        if self.sigma <= 0 or self.crop_margin < 1:
            raise ValueError("sigma must be positive and crop_margin >= 1. Received: "
                             f"sigma={self.sigma}, crop_margin={self.crop_margin}")
        if self.image_size is None or self.image_size % STRIDE:
            raise ValueError(f"image_size must be a multiple of {STRIDE}. "
                             f"Received: image_size={self.image_size}")

    @classmethod
    def from_yaml(cls, path=None, **overrides) -> KeypointConfig:
        return load_config(path, **overrides)


load_config, load_run_config, resolve_resume_dir, run = _base.task_entry_points(
    KeypointConfig, PROJECT, __name__)


# === Data ===


def open_splits(config):
    """`(train, val, test)` `ObjectCrops` of the shapes set: its cornered objects, one
    "corner" channel."""
    from kerascv_suite.data import make_shapes

    count, small = config.shapes_count, max(1, config.shapes_count // 5)
    return tuple(ObjectCrops(make_shapes(n, config.shapes_size, seed=config.seed, split=split),
                             CORNERED, CHANNEL_NAMES)
                 for n, split in ((count, "train"), (small, "val"), (small, "test")))


@dataclasses.dataclass
class KeypointData(_base.ClassifierData):
    """`ClassifierData` of object crops; `train`/`val` get their heatmap targets in
    `prepare_model`, once the model's output names (one per stack) are known."""

    sigma: float = 1.0
    heatmap_size: tuple = (16, 16)

    def describe(self):
        return (f"{len(self.train_loader.dataset)} train, {len(self.val_loader.dataset)} val, "
                f"{len(self.test_loader.dataset)} test objects with corners; crops "
                f"{'x'.join(map(str, self.input_shape))}, heatmaps "
                f"{'x'.join(map(str, self.heatmap_size))}")

    def targets(self, batch):
        return gaussian_heatmaps(batch["keypoints"], self.heatmap_size, STRIDE, self.sigma,
                                 agnostic=True)

    def fit_dataset(self, loader, output_names):
        """`(images, {output: heatmaps})`: the same target for every stack."""
        import tensorflow as tf

        height, width = self.heatmap_size

        def to_heatmaps(keypoints):
            return self.targets({"keypoints": keypoints})

        def pair(batch):
            heatmaps = tf.numpy_function(to_heatmaps, [batch["keypoints"]], tf.float32)
            heatmaps.set_shape((None, height, width, 1))
            return batch["images"], {name: heatmaps for name in output_names}

        ds = loader.as_tf_dataset().map(pair)
        return ds.apply(tf.data.experimental.assert_cardinality(len(loader)))

    def test_batches(self):
        return self.test_loader.iter_epoch(0)


def load_data(config) -> KeypointData:
    from kerascv_suite.data import DataLoader

    size = int(config.image_size)
    train, val, test = open_splits(config)
    jitter = dict(config.augment_options or {}) if config.augment else {}
    train_crop = TopDownCrop(size, config.crop_margin, train=bool(config.augment), **jitter)
    eval_crop = TopDownCrop(size, config.crop_margin)
    keys = ("images", "keypoints", "boxes")

    def loader(ds, crop, shuffle, workers):
        return DataLoader(ds, config.batch_size, augment=crop, keys=keys, shuffle=shuffle,
                          seed=config.seed, max_boxes=1, num_workers=workers, channels=3,
                          num_keypoints=ds[0]["keypoints"].shape[1] if len(ds) else 4)

    return KeypointData(
        train_loader=loader(train, train_crop, True, config.workers),
        val_loader=loader(val, eval_crop, False, config.workers),
        test_loader=loader(test, eval_crop, False, 0),
        train=None,
        val=None,
        class_names=list(CHANNEL_NAMES),
        input_shape=(size, size, 3),
        sigma=float(config.sigma),
        heatmap_size=(size // STRIDE, size // STRIDE),
    )


# === Model ===


def compile_keypoints(model, config, lr, epochs, steps_per_epoch):
    """MSE on every stack, equally weighted (the paper's intermediate supervision)."""
    _base.compile_model(model, config, lr, epochs, steps_per_epoch,
                        loss={name: "mse" for name in heatmap_outputs(model)}, metrics=[])


def prepare_model(config, data, state, run_dir, log=print):
    """`train_classifier.prepare_model` with one heatmap channel and the stacked MSE loss;
    then the fit datasets with one target per stack."""
    model, second_phase = _base.prepare_model(config, data, state, run_dir, log,
                                              compile_fn=compile_keypoints,
                                              build_overrides=dict(config.model_options or {}))
    outputs = heatmap_outputs(model)
    shape = tuple(model.output[outputs[-1]].shape[1:])
    if shape != (*data.heatmap_size, 1):
        raise ValueError(f"{config.model} maps {data.input_shape} crops to {shape} heatmaps; "
                         f"training needs {(*data.heatmap_size, 1)} (stride {STRIDE}, one "
                         f"channel). Received: model={config.model!r}")
    data.train = data.fit_dataset(data.train_loader, outputs)
    data.val = data.fit_dataset(data.val_loader, outputs)
    return model, second_phase


# === Evaluation ===


def epoch_callbacks(config, data, run_dir, tracker):
    """A callback that writes validation PCK (`val_pck`, `val_pck_0.05`, `val_pck_0.2`) into
    each epoch's logs, so it is monitored, saved to results.csv and logged to MLflow."""
    import keras

    class ValidationPCK(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            scores = evaluate_pck(self.model, data.val_loader.iter_epoch(0), PCK_ALPHAS,
                                  STRIDE, prefix="val_")
            if logs is not None:
                logs.update(scores)

    return [ValidationPCK()]


# === Report ===


def finalize(config, data, state, run_dir, tracker, log=print):
    """Scores the best checkpoint on the test split (PCK at 0.05, 0.1, 0.2), draws sample
    predictions, logs the inference model and registers it."""
    import keras

    from kerascv_suite.data import write_image
    from kerascv_suite.training.plots import plot_curves
    from kerascv_suite.training.state import BEST, LAST, checkpoint_dir

    import kerascv_suite.layers  # noqa: F401  (registers custom layers for loading)

    folder = checkpoint_dir(run_dir)
    best = folder / BEST if (folder / BEST).is_file() else folder / LAST
    model = keras.saving.load_model(best)
    test_metrics = evaluate_pck(model, data.test_batches(), PCK_ALPHAS, STRIDE, prefix="test_")
    tracker.log_metrics(test_metrics)
    log(f"Test: PCK@0.1 {test_metrics['test_pck']:.4f}, PCK@0.05 "
        f"{test_metrics['test_pck_0.05']:.4f}, PCK@0.2 {test_metrics['test_pck_0.2']:.4f} "
        f"({len(data.test_loader.dataset)} objects, {best.name})")
    plots = Path(run_dir) / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    paths = [plots / "curves.png"]
    plot_curves(state.history, paths[0])
    panels = draw_keypoint_samples(model, data.test_batches(), config.num_samples, STRIDE)
    for index, panel in enumerate(panels):
        path = plots / f"keypoints_{index}.png"
        write_image(path, panel)
        paths.append(path)
    for path in paths:
        tracker.log_artifact(path, "report")
    tracker.log_artifact(Path(run_dir) / "config.yaml")
    tracker.log_artifact(Path(run_dir) / "results.csv")
    # The logged model is for inference: the same layers without the training loss.
    inference = keras.Model(model.input, model.output, name=model.name)
    images = next(iter(data.test_batches()))["images"][:2]
    outputs = {k: np.asarray(v) for k, v in inference.predict_on_batch(images).items()}
    model_uri = tracker.log_model(inference, images, outputs)
    version = None
    if config.register:
        version = tracker.register(model_uri, config.register, config.alias)
        alias = f" (alias @{config.alias})" if config.alias else ""
        log(f"Registered {config.register} version {version}{alias}.")
    return {"test_metrics": test_metrics, "model_uri": model_uri, "registered_version": version}
