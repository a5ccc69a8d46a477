"""Keypoints: the Stacked Hourglass on object crops of the built-in shapes set's corners.

Protocol (top-down, as MPII single-person pose): every annotated object is one sample. Its
image is cropped around the object's ground-truth box (a square of `crop_margin` times the
box's longer side, centred on the box; `kerascv_suite.data.keypoint_crops`) and resized to
`image_size`, as the hourglass paper crops around each person's given centre and scale.
Training crops are jittered with the paper's augmentation (rotation +-30 degrees, scale
0.75..1.25, horizontal flips).

Keypoints of the shapes set are polygon corners: 4 per square, 3 per triangle; circles have
none and are left out. A corner has no identity, so the model predicts ONE class-agnostic
"corner" channel; an object with `n` corners is decoded to the channel's `n` highest peaks,
matched to its corners by least total distance, then scored with PCK normalised by the
object's box (`kerascv_suite.metrics.keypoints.evaluate_pck`).

Loss: the paper's intermediate supervision, the same MSE against Gaussian heatmaps on every
stack's output, equally weighted. The Gaussians' sigma is `sigma` heatmap cells: 1 by
default, as the paper; the shapes recipe uses 2.

This module imports neither Keras nor TensorFlow at import time.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from kerascv_suite.tasks.base import Evaluation, Task, TaskData, build_registered, check_splits
from kerascv_suite.tasks.config import TrainConfig

AUGMENTS = ("keypoints",)
# Shapes classes that have corners; circles have none.
CORNERED = ("square", "triangle")
CHANNEL_NAMES = ("corner",)
# Logged as val_/test_ `pck` (PCK@0.1), `pck_0.05` and `pck_0.2`.
PCK_ALPHAS = (0.05, 0.1, 0.2)
STRIDE = 4  # input pixels per heatmap cell of the hourglass


@dataclasses.dataclass
class KeypointConfig(TrainConfig):
    """A `TrainConfig` with keypoint defaults and options.

    Attributes (beyond `TrainConfig`'s):
        image_size: side of the square object crops the model sees (64 by default).
        augment: `"keypoints"` (the paper's rotation, scale and flip jitter of the crops) or
            None; `augment_options` may set `rotate` (degrees), `scale` (`[low, high]`) and
            `hflip` (probability).
        sigma: standard deviation of the target Gaussians, in heatmap cells (1 in the paper).
        crop_margin: crop side as a multiple of the object box's longer side.
        shapes_count: training images of the built-in `shapes` set (val and test get a
            fifth each).
        shapes_size: side of the generated shapes images the crops are cut from.
        num_samples: test crops drawn with their predicted and true corners.
    """

    task: str | None = "keypoints"
    model: str = "hourglass"
    data: str = "shapes"
    epochs: int = 20
    batch_size: int = 16
    image_size: int | None = 64
    augment: str | None = "keypoints"
    monitor: str = "val_pck"
    project: str = "runs/keypoints"
    experiment: str = "kcv-train-keypoints"
    sigma: float = 1.0
    crop_margin: float = 1.25
    shapes_count: int = 800
    shapes_size: int = 128
    num_samples: int = 8

    def __post_init__(self):
        super().__post_init__()
        if self.data != "shapes":
            raise ValueError("Keypoint models train on the built-in shapes set (polygon "
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


def open_splits(config):
    """`(train, val, test)` `ObjectCrops` of the shapes set: its cornered objects, one
    "corner" channel."""
    from kerascv_suite.data import make_shapes
    from kerascv_suite.data.keypoint_crops import ObjectCrops

    count, small = config.shapes_count, max(1, config.shapes_count // 5)
    return tuple(ObjectCrops(make_shapes(n, config.shapes_size, seed=config.seed, split=split),
                             CORNERED, CHANNEL_NAMES)
                 for n, split in ((count, "train"), (small, "val"), (small, "test")))


def heatmap_dataset(loader, output_names, heatmap_size, sigma):
    """`(images, {output: heatmaps})` batches: the same Gaussian targets for every stack."""
    import tensorflow as tf

    from kerascv_suite.metrics.keypoints import gaussian_heatmaps

    height, width = heatmap_size

    def to_heatmaps(keypoints):
        return gaussian_heatmaps(keypoints, heatmap_size, STRIDE, sigma, agnostic=True)

    def pair(batch):
        heatmaps = tf.numpy_function(to_heatmaps, [batch["keypoints"]], tf.float32)
        heatmaps.set_shape((None, height, width, 1))
        return batch["images"], {name: heatmaps for name in output_names}

    ds = loader.as_tf_dataset().map(pair)
    return ds.apply(tf.data.experimental.assert_cardinality(len(loader)))


class KeypointTask(Task):
    """Heatmap keypoint models (the Stacked Hourglass), scored by PCK."""

    name = "keypoints"
    config_class = KeypointConfig
    headline = {"test_pck": "test PCK@0.1", "test_pck_0.05": "PCK@0.05",
                "test_pck_0.2": "PCK@0.2"}

    def load_data(self, config, run_dir, log) -> TaskData:
        from kerascv_suite.data import DataLoader
        from kerascv_suite.data.keypoint_crops import TopDownCrop

        size = int(config.image_size)
        train, val, test = open_splits(config)
        skips = check_splits({"train": train, "val": val, "test": test}, config)
        jitter = dict(config.augment_options or {}) if config.augment else {}
        train_crop = TopDownCrop(size, config.crop_margin, train=bool(config.augment), **jitter)
        eval_crop = TopDownCrop(size, config.crop_margin)

        def loader(dataset, crop, shuffle, workers):
            return DataLoader(dataset, config.batch_size, augment=crop,
                              keys=("images", "keypoints", "boxes"), shuffle=shuffle,
                              seed=config.seed, max_boxes=1, num_workers=workers, channels=3,
                              num_keypoints=dataset[0]["keypoints"].shape[1]
                              if len(dataset) else 4)

        data = TaskData(splits={"train": train, "val": val, "test": test},
                        loaders={"train": loader(train, train_crop, True, config.workers),
                                 "val": loader(val, eval_crop, False, config.workers),
                                 "test": loader(test, eval_crop, False, 0)},
                        class_names=list(CHANNEL_NAMES), input_shape=(size, size, 3),
                        extra={"heatmap_size": (size // STRIDE, size // STRIDE)},
                        skips=skips)
        # The fit datasets need the model's output names: `prepare_fit` makes them.
        return data

    def build_model(self, config, data, log):
        return build_registered(config.model_name, config.model_options,
                                num_classes=len(data.class_names),
                                input_shape=data.input_shape), None

    def check_model(self, model, config, data, source):
        from kerascv_suite.metrics.keypoints import heatmap_outputs

        outputs = heatmap_outputs(model)
        shape = tuple(model.output[outputs[-1]].shape[1:])
        if shape != (*data.extra["heatmap_size"], 1):
            raise ValueError(f"{source} maps {data.input_shape} crops to {shape} heatmaps; "
                             f"training needs {(*data.extra['heatmap_size'], 1)} (stride "
                             f"{STRIDE}, one channel). Received: model={config.model!r}")

    def compile(self, model, config, lr, epochs, steps_per_epoch):
        """MSE on every stack, equally weighted (the paper's intermediate supervision)."""
        from kerascv_suite.metrics.keypoints import heatmap_outputs
        from kerascv_suite.training.runner import make_optimizer

        model.compile(optimizer=make_optimizer(config, lr, epochs, steps_per_epoch),
                      loss={name: "mse" for name in heatmap_outputs(model)})

    def prepare_fit(self, model, config, data):
        from kerascv_suite.metrics.keypoints import heatmap_outputs

        self.check_model(model, config, data, config.model)
        outputs = heatmap_outputs(model)
        size, sigma = data.extra["heatmap_size"], float(config.sigma)
        data.train = heatmap_dataset(data.loaders["train"], outputs, size, sigma)
        data.val = heatmap_dataset(data.loaders["val"], outputs, size, sigma)

    def epoch_callbacks(self, config, data, run_dir, tracker):
        """Writes validation PCK (`val_pck`, `val_pck_0.05`, `val_pck_0.2`) into each
        epoch's logs, so it is monitored, saved to results.csv and logged to MLflow."""
        import keras

        from kerascv_suite.metrics.keypoints import evaluate_pck

        class ValidationPCK(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                scores = evaluate_pck(self.model, data.loaders["val"].iter_epoch(0),
                                      PCK_ALPHAS, STRIDE, prefix="val_")
                if logs is not None:
                    logs.update(scores)

        return [ValidationPCK()]

    def evaluate(self, model, config, data, split, log) -> Evaluation:
        from kerascv_suite.metrics.keypoints import evaluate_pck

        loader = data.loaders[split]
        metrics = evaluate_pck(model, loader.iter_epoch(0), PCK_ALPHAS, STRIDE)
        images = next(iter(loader.iter_epoch(0)))["images"][:2]
        outputs = {k: np.asarray(v) for k, v in model.predict_on_batch(images).items()}
        summary = (f"PCK@0.1 {metrics['pck']:.4f}, PCK@0.05 {metrics['pck_0.05']:.4f}, "
                   f"PCK@0.2 {metrics['pck_0.2']:.4f} ({len(loader.dataset)} objects)")
        return Evaluation(metrics, summary, sample_inputs=images, sample_outputs=outputs)

    def write_report(self, evaluation, model, config, data, history, folder):
        from kerascv_suite.data import write_image
        from kerascv_suite.visualization import plot_curves
        from kerascv_suite.visualization.keypoints import draw_keypoint_samples

        folder.mkdir(parents=True, exist_ok=True)
        paths = [folder / "curves.png"]
        plot_curves(history, paths[0])
        panels = draw_keypoint_samples(model, data.loaders["test"].iter_epoch(0),
                                       config.num_samples, STRIDE)
        for index, panel in enumerate(panels):
            path = folder / f"keypoints_{index}.png"
            write_image(path, panel)
            paths.append(path)
        return paths
