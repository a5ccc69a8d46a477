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

from kerascv_suite.pipelines import train_classifier as _base
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
# `pck` is PCK@0.1; the others are named by their alpha.
PCK_ALPHAS = (0.05, 0.1, 0.2)
STRIDE = 4  # input pixels per heatmap cell of the hourglass


def metric_name(alpha, prefix="val_"):
    return f"{prefix}pck" if alpha == 0.1 else f"{prefix}pck_{alpha:g}"


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


class ObjectCrops:
    """One sample per object with corners: the whole image, that object's box and corners.

    The generated images are kept in memory (the shapes set regenerates an image per access).

    Args:
        dataset: a detection dataset with `keypoints` (e.g. `make_shapes(...)`).
        classes: class names whose objects are kept.
    """

    task = "keypoints"

    def __init__(self, dataset, classes=CORNERED):
        keep = [dataset.class_names.index(n) for n in classes if n in dataset.class_names]
        self.class_names = list(CHANNEL_NAMES)
        self.skipped = getattr(dataset, "skipped", None)
        self.images, self.objects = [], []
        for index in range(len(dataset)):
            sample = dataset[index]
            for row, class_id in enumerate(sample["classes"]):
                if int(class_id) in keep and (sample["keypoints"][row, :, 2] > 0).any():
                    self.objects.append((len(self.images), sample["boxes"][row],
                                         sample["keypoints"][row], sample["path"]))
            self.images.append(sample["image"])

    @property
    def num_classes(self):
        return 1

    def __len__(self):
        return len(self.objects)

    def __getitem__(self, index):
        image_index, box, keypoints, path = self.objects[index]
        return {"image": self.images[image_index], "boxes": box[None],
                "classes": np.zeros(1, np.int32), "keypoints": keypoints[None], "path": path}


class TopDownCrop:
    """Crops a square around the sample's (single) box and resizes it, moving the box and
    keypoints along; in training, with random rotation, scale and horizontal flip.

    Picklable (plain attributes), so loader worker processes can run it.

    Args:
        size: output side in pixels.
        margin: crop side / the box's longer side.
        train: jitter (True) or a centred crop (False).
        rotate: largest rotation in degrees (the paper: 30).
        scale: range of the crop scale factor (the paper: 0.75..1.25).
        hflip: probability of a horizontal flip.
    """

    def __init__(self, size, margin=1.25, train=False, rotate=30.0, scale=(0.75, 1.25),
                 hflip=0.5):
        self.size = int(size)
        self.margin = float(margin)
        self.train = bool(train)
        self.rotate = float(rotate or 0.0)
        self.scale = tuple(scale) if scale else (1.0, 1.0)
        self.hflip = float(hflip or 0.0)

    @property
    def output_size(self):
        return (self.size, self.size)

    def matrix(self, box, rng=None):
        """The 2x3 affine map of continuous input coordinates to crop coordinates."""
        import cv2

        x0, y0, x1, y1 = (float(v) for v in box)
        side = self.margin * max(x1 - x0, y1 - y0, 1.0)
        angle, factor, flip = 0.0, 1.0, False
        if self.train and rng is not None:
            angle = rng.uniform(-self.rotate, self.rotate)
            factor = rng.uniform(*self.scale)
            flip = rng.random() < self.hflip
        half = self.size / 2
        # Rotate and scale about the box centre, then move it to the crop centre.
        m = cv2.getRotationMatrix2D(((x0 + x1) / 2, (y0 + y1) / 2), angle,
                                    self.size / (side * factor))
        m[:, 2] += [half - (x0 + x1) / 2, half - (y0 + y1) / 2]
        if flip:
            m[0] = -m[0]
            m[0, 2] += self.size
        return m

    def __call__(self, sample, seed=0):
        import cv2

        rng = np.random.default_rng(seed)
        m = self.matrix(sample["boxes"][0], rng)
        # warpAffine maps pixel centres (index i = continuous i + 0.5).
        shift = np.array([[1.0, 0, 0.5], [0, 1.0, 0.5], [0, 0, 1]])
        to_index = np.array([[1.0, 0, -0.5], [0, 1.0, -0.5]])
        pixel_map = to_index @ np.vstack([m, [0, 0, 1]]) @ shift
        image = cv2.warpAffine(sample["image"], pixel_map, (self.size, self.size),
                               flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        if image.ndim == 2:
            image = image[..., None]
        keypoints = np.array(sample["keypoints"], np.float32)
        xy = keypoints[..., :2] @ m[:, :2].T + m[:, 2]
        inside = ((xy >= 0) & (xy < self.size)).all(-1)
        keypoints[..., :2] = xy
        keypoints[..., 2] = np.where(inside, keypoints[..., 2], 0)
        x0, y0, x1, y1 = sample["boxes"][0]
        corners = np.array([[x0, y0], [x1, y0], [x0, y1], [x1, y1]]) @ m[:, :2].T + m[:, 2]
        box = np.concatenate([corners.min(0), corners.max(0)])[None].astype(np.float32)
        return {**sample, "image": image, "keypoints": keypoints, "boxes": box}


def open_splits(config):
    """`(train, val, test)` `ObjectCrops` of the shapes set."""
    from kerascv_suite.data import make_shapes

    count, small = config.shapes_count, max(1, config.shapes_count // 5)
    return tuple(ObjectCrops(make_shapes(n, config.shapes_size, seed=config.seed, split=split))
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
        from kerascv_suite.metrics.keypoints import gaussian_heatmaps

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


def heatmap_outputs(model) -> list[str]:
    """The model's heatmap output names, first stack first; the last is the prediction."""
    names = list(model.output) if isinstance(model.output, dict) else []
    if not names or not all(n.startswith("heatmaps_") for n in names):
        raise ValueError(f"{model.name} does not output stacked heatmaps (a dict of "
                         f"'heatmaps_<stack>'). Received: outputs {names or model.output}")
    return sorted(names, key=lambda n: int(n.rsplit("_", 1)[1]))


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


def predict_corners(model, images, keypoints):
    """Predicted corners matched to the true ones: `(batch, num_keypoints, 2)` crop pixels.

    Each object takes as many of the last stack's highest peaks as it has labelled corners.
    """
    from kerascv_suite.metrics.keypoints import decode_peaks, match_unordered

    outputs = model.predict_on_batch(images)
    heatmaps = np.asarray(outputs[heatmap_outputs(model)[-1]])
    num_keypoints = keypoints.shape[-2]
    coords, _ = decode_peaks(heatmaps, num_keypoints, stride=STRIDE)
    return match_unordered(coords[:, 0], keypoints[..., :2], keypoints[..., 2] > 0), heatmaps


def evaluate_pck(model, batches, alphas=PCK_ALPHAS, keep=0):
    """PCK over all `batches` (loader batch dicts); `keep` crops are returned for drawing.

    Returns:
        `({alpha: pck}, [(image, true_keypoints, predicted, heatmap)])`.
    """
    from kerascv_suite.metrics.keypoints import PCKAccumulator, box_normalizer

    accumulator = PCKAccumulator(alphas)
    samples = []
    for batch in batches:
        keypoints = batch["keypoints"][:, 0]
        predicted, heatmaps = predict_corners(model, batch["images"], keypoints)
        accumulator.update(predicted, keypoints[..., :2], keypoints[..., 2] > 0,
                           box_normalizer(batch["boxes"][:, 0]))
        for row in range(min(len(predicted), keep - len(samples))):
            samples.append((batch["images"][row], keypoints[row], predicted[row],
                            heatmaps[row, ..., 0]))
    return accumulator.result(), samples


def epoch_callbacks(config, data, run_dir, tracker):
    """A callback that writes validation PCK (`val_pck`, `val_pck_0.05`, `val_pck_0.2`) into
    each epoch's logs, so it is monitored, saved to results.csv and logged to MLflow."""
    import keras

    class ValidationPCK(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            scores, _ = evaluate_pck(self.model, data.val_loader.iter_epoch(0))
            if logs is not None:
                logs.update({metric_name(a): float(v) for a, v in scores.items()})

    return [ValidationPCK()]


# === Report ===


def draw_sample(image, keypoints, predicted, heatmap, zoom=4):
    """A panel: the crop with true (green) and predicted (red) corners, and the heatmap."""
    import cv2

    size = image.shape[0] * zoom
    canvas = cv2.resize(np.ascontiguousarray(image), (size, size),
                        interpolation=cv2.INTER_NEAREST)
    for (x, y, v), (px, py) in zip(keypoints, predicted):
        if v <= 0:
            continue
        cv2.circle(canvas, (int(x * zoom), int(y * zoom)), 2 * zoom, (0, 255, 0), -1)
        cv2.drawMarker(canvas, (int(px * zoom), int(py * zoom)), (255, 0, 0),
                       cv2.MARKER_CROSS, 4 * zoom, 2)
    heat = np.clip(heatmap, 0, 1)
    heat = cv2.applyColorMap((heat * 255).astype(np.uint8), cv2.COLORMAP_JET)[..., ::-1]
    heat = cv2.resize(heat, (size, size), interpolation=cv2.INTER_NEAREST)
    return np.concatenate([canvas, heat], axis=1)


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
    scores, samples = evaluate_pck(model, data.test_batches(), keep=config.num_samples)
    test_metrics = {metric_name(a, "test_"): float(v) for a, v in scores.items()}
    tracker.log_metrics(test_metrics)
    log(f"Test: PCK@0.1 {scores[0.1]:.4f}, PCK@0.05 {scores[0.05]:.4f}, PCK@0.2 "
        f"{scores[0.2]:.4f} ({len(data.test_loader.dataset)} objects, {best.name})")
    plots = Path(run_dir) / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    paths = [plots / "curves.png"]
    plot_curves(state.history, paths[0])
    for index, sample in enumerate(samples):
        path = plots / f"keypoints_{index}.png"
        write_image(path, draw_sample(*sample))
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
