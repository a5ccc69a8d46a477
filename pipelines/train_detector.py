"""Train an object detector end to end, on the classification pipeline's engine.

The run itself (run folder, resume, MLflow run, checkpoints, NaN stop, early stopping,
registration) is `train_classifier.run`; this module supplies the detection steps it calls:
`load_data`, `prepare_model`, `epoch_callbacks` (validation AP every `val_every` epochs,
monitored as `val_ap50` by default) and `finalize` (test-split COCO and VOC metrics, PR
curves, confusion matrix, drawn samples, the logged detector).

How each family trains (see `kerascv_suite.models.detection`):

* YOLO v1 and SSD: `(images, pack_detection_targets(boxes, classes))` batches, compiled with
  `make_loss(model)` (the paper's loss); the logged model is `make_inference_model(model)`,
  the training graph plus decode + NMS, so `kcv detect` and `kcv export` get a detector.
* Faster R-CNN: batch dicts `{"images", "boxes", "classes"}`; the model computes its RPN and
  box-head losses itself (`compute_loss`), so it is compiled with an optimizer only.
* Fast R-CNN: batch dicts that also hold `"proposals"`: selective search, run ONCE per image
  (on the resized image) and cached in memory and in `<run>/proposals/<split>.npz`. The
  splits are resized once and held in memory as arrays (fine for the shapes set and
  VOC-sized data). Random crops would move the objects away from their cached proposals, so
  these two families train on resized images with horizontal flips only (image, boxes and
  proposals flipped together) when `augment` is `"detection"`.
* R-CNN, the paper's three stages (Girshick et al. 2014, sec. 2): (1) the same cached
  selective-search proposals; (2) `model.fit` fine-tunes the CNN on warped regions with a
  (C + 1)-way softmax, the engine's epochs; (3) per-class linear SVMs and box regressors
  (`fit_svms_and_regressors`). Stage 3 runs at every validation on at most
  `RCNN_VALIDATION_IMAGES` training images (before it, every score is 0.5, so `val_ap50`
  would say nothing about the CNN), and once more on the whole training split in
  `finalize`, whose result is written into `checkpoints/best.keras` before it is scored and
  logged.

Class ids are checked up front: every split's class names must equal the training split's,
annotation class ids must lie in `0..C-1` (the error names the file), and a resumed or
`--weights` model must predict as many classes as the data has. A mismatch is an error,
never a silent zero mAP.

Example:
    >>> from kerascv_suite.pipelines.train_detector import DetectorConfig, run
    >>> config = DetectorConfig.from_yaml(None, model="faster_rcnn_small", epochs=3)
    >>> run(config).test_metrics["test_ap50"]

This module imports neither Keras nor TensorFlow at import time.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from kerascv_suite.pipelines import train_classifier as _base
# What `apps/train_cmd.run_training` reads from a task pipeline besides its entry points.
from kerascv_suite.pipelines.train_classifier import (  # noqa: F401
    TrackingUnavailable,
    TrainingDiverged,
    check_backend,
)

FORMATS = ("voc", "coco", "yolo")
AUGMENTS = ("detection", "detection_eval")
PROJECT = "runs/detect"
SHAPES_SIZE = 128
# Builder function -> how the model trains (see the module docstring).
FAMILIES = {"yolo_v1": "single_shot", "ssd": "single_shot", "faster_rcnn": "faster_rcnn",
            "fast_rcnn": "fast_rcnn", "rcnn": "rcnn"}
PROPOSAL_FAMILIES = ("fast_rcnn", "rcnn")
RCNN_VALIDATION_IMAGES = 64
VAL_METRICS = {"AP": "ap", "AP50": "ap50", "AP75": "ap75"}
TEST_METRICS = {"AP": "ap", "AP50": "ap50", "AP75": "ap75", "APs": "ap_small",
                "APm": "ap_medium", "APl": "ap_large", "AR1": "ar1", "AR10": "ar10",
                "AR100": "ar100", "ARs": "ar_small", "ARm": "ar_medium", "ARl": "ar_large"}


@dataclasses.dataclass
class DetectorConfig(_base.TrainConfig):
    """A `TrainConfig` with detection defaults and options.

    Attributes (beyond `TrainConfig`'s):
        model_options: other builder arguments of a fresh model (e.g. `backbone: small`,
            `width`, `anchor_scales`).
        shapes_count: training images of the built-in `shapes` set (val and test get a
            fifth each); its images are generated at `image_size` (128 when unset).
        max_boxes: ground-truth rows per image in a batch (more are truncated, and counted).
        score_threshold, iou_threshold, max_detections: post-processing of validation and
            test detections and of the logged detector (None: the model's, the paper's).
        max_proposals: selective-search proposals per image (Fast R-CNN, R-CNN).
        val_every: validation AP every this many epochs (and always after the last one).
        num_samples: test images drawn with their detections into the report.
    """

    model: str = "faster_rcnn"
    data: str = "shapes"
    epochs: int = 20
    batch_size: int = 8
    augment: str | None = "detection"
    monitor: str = "val_ap50"
    project: str = PROJECT
    experiment: str = "kcv-train-detector"
    model_options: dict = dataclasses.field(default_factory=dict)
    shapes_count: int = 800
    max_boxes: int = 20
    score_threshold: float | None = None
    iou_threshold: float | None = None
    max_detections: int | None = None
    max_proposals: int = 300
    val_every: int = 1
    num_samples: int = 8

    def __post_init__(self):
        super().__post_init__()
        if self.format is not None and self.format not in FORMATS:
            raise ValueError(f"Detection reads boxes from {FORMATS}. "
                             f"Received: format={self.format!r}")
        if self.augment is not None and self.augment not in AUGMENTS:
            raise ValueError(f"augment must be None or one of {AUGMENTS} (presets that move "
                             f"boxes with the image). Received: augment={self.augment!r}")
        for field in ("max_boxes", "max_proposals", "val_every", "shapes_count"):
            if int(getattr(self, field)) < 1:
                raise ValueError(f"{field} must be >= 1. "
                                 f"Received: {field}={getattr(self, field)}")
        if self.num_samples < 0:
            raise ValueError(f"num_samples must be >= 0. Received: num_samples={self.num_samples}")
        for field in ("score_threshold", "iou_threshold"):
            value = getattr(self, field)
            if value is not None and not 0 <= value <= 1:
                raise ValueError(f"{field} must lie in [0, 1]. Received: {field}={value}")
        if self.max_detections is not None and self.max_detections < 1:
            raise ValueError(f"max_detections must be >= 1. "
                             f"Received: max_detections={self.max_detections}")
        self.model_options = dict(self.model_options or {})

    @classmethod
    def from_yaml(cls, path=None, **overrides) -> DetectorConfig:
        return load_config(path, **overrides)


load_config, load_run_config, resolve_resume_dir, run = _base.task_entry_points(
    DetectorConfig, PROJECT, __name__)


def model_family(name) -> str:
    """`"single_shot"`, `"faster_rcnn"`, `"fast_rcnn"` or `"rcnn"` for a registry name."""
    from kerascv_suite.models.registry import get_spec

    spec = get_spec(name)
    family = FAMILIES.get(spec.builder.__name__)
    if spec.task != "detection" or family is None:
        raise ValueError(f"{name!r} is not a detector; choose one of the detection models "
                         f"(kcv models --task detection). Received: model={name!r}")
    return family


# === Data ===


def detect_format(root) -> str:
    root = Path(root)
    if (root / "Annotations").is_dir() or (root / "JPEGImages").is_dir():
        return "voc"
    if (root / "annotations").is_dir() or root.suffix == ".json":
        return "coco"
    if (root / "labels").is_dir() or (root / "data.yaml").is_file():
        return "yolo"
    raise ValueError(f"Cannot tell the format of {root}; pass --format "
                     f"({', '.join(FORMATS)}). Received: data={str(root)!r}")


def open_splits(config, size):
    """`(train, val, test)`; a dataset without train/val splits gets a seeded 80/10/10
    split (as `train_segmenter.open_splits`)."""
    from kerascv_suite.data import list_splits, make_shapes, read_dataset

    if config.data == "shapes":
        count, small = config.shapes_count, max(1, config.shapes_count // 5)
        return tuple(make_shapes(n, size, seed=config.seed, split=split)
                     for n, split in ((count, "train"), (small, "val"), (small, "test")))
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
        return train, val, test
    full = read_dataset(root, fmt, splits[0] if splits else None)
    train, val, test = _base._split_indices(len(full), config.seed)
    view = _base._View
    return view(full, train), view(full, val), view(full, test)


def _annotation_classes(dataset):
    """`(description, classes)` of each entry whose annotations are parsed already (folder
    datasets); generated data (shapes) is valid by construction and yields nothing."""
    import numpy as np

    indices = getattr(dataset, "indices", None)
    base = getattr(dataset, "dataset", dataset)
    records = getattr(base, "records", None)
    if records is None:
        return
    for index in (range(len(records)) if indices is None else indices):
        yield base.describe(index), np.asarray(records[index].get("classes", []))


def check_class_ids(splits, class_names):
    """Every split names the same classes and every annotation id lies in `0..C-1`.

    Raises:
        ValueError: naming the split's classes, or the file and its bad ids.
    """
    num_classes = len(class_names)
    for name, dataset in splits.items():
        if list(dataset.class_names) != list(class_names):
            raise ValueError(f"The {name} split's classes {list(dataset.class_names)} differ "
                             f"from the train split's {list(class_names)}; class ids would "
                             f"mean different things. Received: data with mismatched classes")
        for where, classes in _annotation_classes(dataset):
            bad = classes[(classes < 0) | (classes >= num_classes)]
            if bad.size:
                raise ValueError(f"{where}: class ids {sorted(set(bad.tolist()))} lie outside "
                                 f"0..{num_classes - 1} ({num_classes} classes: "
                                 f"{list(class_names)}). Received: {name} split entry {where}")


def check_model_classes(model, class_names, source):
    """A resumed or `--weights` detector must predict exactly the data's classes."""
    from kerascv_suite.models.detection.inference import detector_num_classes, is_detector

    if not is_detector(model):
        raise ValueError(f"{source} is not a detector. Received: model {model.name!r}")
    count = detector_num_classes(model)
    if count != len(class_names):
        raise ValueError(f"Class mismatch: the model ({source}) predicts {count} classes but "
                         f"the data has {len(class_names)}: {list(class_names)}. Train a "
                         f"fresh model (no --weights) or use data with {count} classes. "
                         f"Received: model with {count} classes")


@dataclasses.dataclass
class DetectorData(_base.ClassifierData):
    """`ClassifierData` for detection.

    Attributes (beyond `ClassifierData`'s):
        family: see `model_family`.
        arrays: for Fast R-CNN / R-CNN, per split `{"images" uint8, "boxes", "classes",
            "proposals"}` numpy arrays of the resized images (proposals cached).
    """

    family: str = "single_shot"
    arrays: dict = dataclasses.field(default_factory=dict)
    batch_size: int = 8

    def eval_batches(self, split):
        """Yields `(model_inputs, images uint8, boxes, classes)` of the `"val"` or `"test"`
        split, in order; `model_inputs` hold the cached proposals where the model takes them."""
        import numpy as np

        if split in self.arrays:
            a = self.arrays[split]
            for start in range(0, len(a["images"]), self.batch_size):
                part = {k: v[start:start + self.batch_size] for k, v in a.items()}
                inputs = {"images": part["images"].astype("float32"),
                          "proposals": part["proposals"]}
                yield inputs, part["images"], part["boxes"], part["classes"]
            return
        loaders = {"val": self.val_loader, "test": self.test_loader}
        if split not in loaders:
            raise ValueError(f"split must be 'val' or 'test'. Received: split={split!r}")
        for batch in loaders[split].iter_epoch(0):
            images = np.asarray(batch["images"])
            yield images.astype("float32"), images, batch["boxes"], batch["classes"]


def _materialize(loader):
    """The loader's epoch-0 batches (unshuffled, eval-resized) as one dict of arrays."""
    import numpy as np

    parts = list(loader.iter_epoch(0))
    if not parts:
        raise ValueError(f"No readable image in {loader.dataset!r}.")
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def cached_proposals(run_dir, split, images, max_proposals, log=print):
    """Selective search proposals of `images`, computed once per image and kept in
    `<run_dir>/proposals/<split>.npz` (a resumed run reads them back)."""
    import time

    import numpy as np

    from kerascv_suite.models.detection.selective_search import selective_search_batch
    from kerascv_suite.training.state import atomic_path

    path = Path(run_dir) / "proposals" / f"{split}.npz"
    key = np.asarray([len(images), *images.shape[1:3], max_proposals])
    if path.is_file():
        with np.load(path) as cached:
            if np.array_equal(cached["key"], key):
                return cached["proposals"]
    start = time.monotonic()
    proposals = selective_search_batch(images, max_proposals=max_proposals)
    log(f"Selective search: {len(images)} {split} images in {time.monotonic() - start:.0f} s "
        f"(cached in {path}).")
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, proposals=proposals, key=key)
    return proposals


def _single_shot_dataset(loader):
    import tensorflow as tf

    # The tf.data twin of `losses.pack_detection_targets` (keras.ops would not run inside
    # a tf.data map under the jax and torch backends): boxes, then the class id as a float.
    def pack(images, targets):
        classes = tf.cast(targets["classes"], tf.float32)[..., None]
        return tf.cast(images, tf.float32), tf.concat([targets["boxes"], classes], axis=-1)

    ds = loader.as_tf_dataset(x="images", y=("boxes", "classes")).map(pack)
    return ds.apply(tf.data.experimental.assert_cardinality(len(loader)))


def _dict_dataset(loader):
    import tensorflow as tf

    def cast(batch):
        return {**batch, "images": tf.cast(batch["images"], tf.float32)}

    ds = loader.as_tf_dataset().map(cast)
    return ds.apply(tf.data.experimental.assert_cardinality(len(loader)))


def _array_dataset(arrays, batch_size, seed, flip):
    """Batches of in-memory arrays, reshuffled every epoch; with `flip`, a random
    horizontal flip of each image with its boxes and proposals."""
    import tensorflow as tf

    width = float(arrays["images"].shape[2])

    def flip_boxes(boxes):
        flipped = tf.stack([width - boxes[..., 2], boxes[..., 1], width - boxes[..., 0],
                            boxes[..., 3]], axis=-1)
        padding = tf.reduce_all(boxes == 0, axis=-1, keepdims=True)
        return tf.where(padding, boxes, flipped)

    def augment(sample):
        if tf.random.uniform([], seed=seed) >= 0.5:
            return sample
        return {**sample, "images": sample["images"][:, ::-1],
                "boxes": flip_boxes(sample["boxes"]),
                "proposals": flip_boxes(sample["proposals"])}

    def cast(batch):
        return {**batch, "images": tf.cast(batch["images"], tf.float32)}

    n = len(arrays["images"])
    ds = tf.data.Dataset.from_tensor_slices(arrays)
    ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    if flip:
        ds = ds.map(augment)
    ds = ds.batch(batch_size).map(cast)
    return ds.apply(tf.data.experimental.assert_cardinality(-(-n // batch_size))).prefetch(2)


def load_data(config, log=print) -> DetectorData:
    from kerascv_suite.data import DataLoader, build_augmenter
    from kerascv_suite.models.registry import get_spec

    family = model_family(config.model)
    if config.image_size:
        size = (config.image_size,) * 2
    elif config.data == "shapes":
        size = (SHAPES_SIZE,) * 2
    else:
        size = tuple(get_spec(config.model).input_shape[:2])
    train, val, test = open_splits(config, size[0] if config.data == "shapes" else None)
    class_names = list(train.class_names)
    check_class_ids({"train": train, "val": val, "test": test}, class_names)
    keys = ("images", "boxes", "classes")
    eval_aug = build_augmenter("detection_eval", image_size=size)
    proposals = family in PROPOSAL_FAMILIES
    if config.augment and not proposals:
        train_aug = build_augmenter(config.augment, image_size=size,
                                    **(config.augment_options or {}))
    else:
        train_aug = eval_aug

    def loader(ds, augment, shuffle, workers):
        return DataLoader(ds, config.batch_size, augment=augment, keys=keys, shuffle=shuffle,
                          seed=config.seed, max_boxes=config.max_boxes, num_workers=workers,
                          channels=3)

    train_loader = loader(train, train_aug, not proposals, 0 if proposals else config.workers)
    val_loader = loader(val, eval_aug, False, 0 if proposals else config.workers)
    test_loader = loader(test, eval_aug, False, 0)
    data = DetectorData(train_loader=train_loader, val_loader=val_loader,
                        test_loader=test_loader, train=None, val=None, class_names=class_names,
                        input_shape=(*size, 3), family=family, batch_size=config.batch_size)
    if proposals:
        for split, split_loader in (("train", train_loader), ("val", val_loader),
                                    ("test", test_loader)):
            arrays = _materialize(split_loader)
            arrays["proposals"] = cached_proposals(config.run_dir, split, arrays["images"],
                                                   config.max_proposals, log)
            data.arrays[split] = arrays
        flip = config.augment == "detection"
        data.train = _array_dataset(data.arrays["train"], config.batch_size, config.seed, flip)
        data.val = _array_dataset(data.arrays["val"], config.batch_size, config.seed, False)
    elif family == "faster_rcnn":
        data.train, data.val = _dict_dataset(train_loader), _dict_dataset(val_loader)
    else:
        data.train, data.val = _single_shot_dataset(train_loader), \
            _single_shot_dataset(val_loader)
    return data


# === Model ===


def compile_detector(model, config, lr, epochs, steps_per_epoch):
    """Compiles with the config's optimizer and schedule (as `train_classifier.compile_model`)
    and the paper's loss for YOLO v1 / SSD. The R-CNN family computes its own loss from the
    batch dict, so it gets no loss and, like the others, no compiled metrics (Keras would
    match them against the training outputs; validation AP comes from `epoch_callbacks`)."""
    from kerascv_suite.models.detection.rcnn import RCNN
    from kerascv_suite.models.detection.single_shot import make_loss
    from kerascv_suite.models.detection.two_stage import TwoStageDetector
    from kerascv_suite.training.optim import make_optimizer, make_schedule

    schedule = make_schedule(
        config.schedule, lr, epochs * steps_per_epoch,
        warmup_steps=config.warmup_epochs * steps_per_epoch,
        step_every=(config.step_epochs or 0) * steps_per_epoch or None)
    optimizer = make_optimizer(config.optimizer, schedule, momentum=config.momentum,
                               weight_decay=config.weight_decay)
    own_loss = isinstance(model, (TwoStageDetector, RCNN))
    model.compile(optimizer=optimizer, loss=None if own_loss else make_loss(model))


def prepare_model(config, data, state, run_dir, log=print):
    """`train_classifier.prepare_model` with the detection loss and `model_options`; a
    `--weights` detector (a `.keras` file or MLflow URI) continues training as it is.

    Raises:
        ValueError: the resumed or `--weights` model predicts other classes than the data's.
    """
    import kerascv_suite.losses  # noqa: F401  (registers the detection losses for loading)
    import kerascv_suite.models  # noqa: F401  (registers the detector classes for loading)
    from kerascv_suite.training.state import LAST, checkpoint_dir

    if config.freeze is not None:
        raise ValueError("Detectors train whole (no --freeze phases). "
                         f"Received: freeze={config.freeze!r}")
    if config.mixed_precision and data.family != "single_shot":
        raise ValueError("Mixed precision is available for YOLO v1 and SSD (functional "
                         "models); the R-CNN family trains in float32. "
                         f"Received: model={config.model!r}, mixed_precision=True")
    resuming = state.epoch > 0 and (checkpoint_dir(run_dir) / LAST).is_file()
    if config.weights and not resuming:
        from kerascv_suite.models.resolve import get_model

        model = get_model(config.weights)
        check_model_classes(model, data.class_names, f"--weights {config.weights}")
        compile_detector(model, config, config.lr, config.epochs, len(data.train_loader))
        log(f"Training on from {config.weights}.")
        return model, None
    overrides = dict(config.model_options or {})
    model, second_phase = _base.prepare_model(
        dataclasses.replace(config, weights=None), data, state, run_dir, log,
        compile_fn=compile_detector, build_overrides=overrides)
    check_model_classes(model, data.class_names,
                        f"checkpoint {checkpoint_dir(run_dir) / LAST}" if resuming
                        else config.model)
    return model, second_phase


def make_detector(model, config):
    from kerascv_suite.models.detection.inference import Detector

    return Detector(model, score_threshold=config.score_threshold,
                    iou_threshold=config.iou_threshold, max_detections=config.max_detections,
                    max_proposals=config.max_proposals)


@dataclasses.dataclass
class Predictions:
    """Per-image ground truth and detections of one split (numpy, padding removed)."""

    gt_boxes: list = dataclasses.field(default_factory=list)
    gt_classes: list = dataclasses.field(default_factory=list)
    boxes: list = dataclasses.field(default_factory=list)
    scores: list = dataclasses.field(default_factory=list)
    classes: list = dataclasses.field(default_factory=list)
    images: list = dataclasses.field(default_factory=list)
    sample_inputs: Any = None
    sample_outputs: Any = None


def predict_split(detector, data, split, keep_images=0) -> Predictions:
    """Runs `detector` over a split (cached proposals where the model takes them)."""
    import numpy as np

    from kerascv_suite.models.detection.inference import CONTRACT_KEYS

    out = Predictions()
    for inputs, images, boxes, classes in data.eval_batches(split):
        if isinstance(inputs, dict):
            raw = detector.model.predict_on_batch(inputs)
            result = {key: np.asarray(raw[key]) for key in CONTRACT_KEYS}
        else:
            result = detector.predict(inputs)
        if out.sample_inputs is None:
            out.sample_inputs = np.asarray(images[:2], np.float32)
            out.sample_outputs = {k: v[:2] for k, v in result.items()}
        for i in range(len(images)):
            valid = np.asarray(classes[i]) >= 0
            out.gt_boxes.append(np.asarray(boxes[i])[valid])
            out.gt_classes.append(np.asarray(classes[i])[valid])
            n = int(result["num_detections"][i])
            out.boxes.append(result["boxes"][i, :n])
            out.scores.append(result["scores"][i, :n])
            out.classes.append(result["classes"][i, :n].astype(np.int64))
            if len(out.images) < keep_images:
                out.images.append(np.asarray(images[i], np.uint8))
    return out


def coco_scores(predictions, num_classes):
    from kerascv_suite.metrics.detection import coco_evaluate_arrays

    p = predictions
    return coco_evaluate_arrays(p.gt_boxes, p.gt_classes, p.boxes, p.scores, p.classes,
                                num_classes)


def fit_rcnn_stage3(model, arrays, limit=None, log=print):
    """R-CNN stage 3 on (the first `limit` of) a split's arrays: SVMs + box regressors."""
    import warnings

    from kerascv_suite.models.detection.rcnn import fit_svms_and_regressors

    n = len(arrays["images"]) if limit is None else min(limit, len(arrays["images"]))
    with warnings.catch_warnings():
        # A few hundred LinearSVC iterations are enough here; sklearn warns all the same.
        warnings.filterwarnings("ignore", message=".*converge.*")
        counts = fit_svms_and_regressors(model, arrays["images"][:n], arrays["boxes"][:n],
                                         arrays["classes"][:n], arrays["proposals"][:n])
    log(f"R-CNN SVMs and box regressors fitted on {n} images "
        f"(positives per class {counts['positives']}).")
    return counts


def epoch_callbacks(config, data, run_dir, tracker):
    """A callback writing `val_ap`, `val_ap50`, `val_ap75` (COCO) into the epoch's logs
    every `val_every` epochs and after the last; the checkpoint callback then monitors,
    saves and logs them."""
    import keras

    class ValidationAP(keras.callbacks.Callback):
        detector = None

        def on_epoch_end(self, epoch, logs=None):
            if logs is None or ((epoch + 1) % config.val_every
                                and epoch + 1 != config.epochs):
                return
            if data.family == "rcnn":
                fit_rcnn_stage3(self.model, data.arrays["train"], RCNN_VALIDATION_IMAGES,
                                log=lambda _: None)
            # One detector for the run: it shares the model's variables, so its predict
            # function is traced once, not every validation.
            if self.detector is None or self.detector.source is not self.model:
                self.detector = make_detector(self.model, config)
                self.detector.source = self.model
            detector = self.detector
            result = coco_scores(predict_split(detector, data, "val"), len(data.class_names))
            stats = result.as_dict()
            for stat, name in VAL_METRICS.items():
                logs[f"val_{name}"] = stats[stat]
            print(f"Epoch {epoch + 1}: val AP {stats['AP']:.4f}, AP50 {stats['AP50']:.4f}, "
                  f"AP75 {stats['AP75']:.4f}")

    return [ValidationAP()]


# === Report ===


def finalize(config, data, state, run_dir, tracker, log=print):
    """Scores the best checkpoint on the test split (12 COCO stats, VOC07 and VOC10+ mAP),
    writes the report (PR curves, confusion matrix, drawn samples, curves), logs the
    detector and registers it."""
    import keras

    from kerascv_suite.metrics.detection import voc_evaluate
    from kerascv_suite.models.detection.single_shot import make_inference_model
    from kerascv_suite.training import detection_report
    from kerascv_suite.training.state import BEST, LAST, atomic_path, checkpoint_dir

    folder = checkpoint_dir(run_dir)
    best = folder / BEST if (folder / BEST).is_file() else folder / LAST
    model = keras.saving.load_model(best)
    if data.family == "rcnn":
        fit_rcnn_stage3(model, data.arrays["train"], log=log)
        with atomic_path(best) as tmp:
            model.save(tmp)
    detector = make_detector(model, config)
    predictions = predict_split(detector, data, "test", keep_images=config.num_samples)
    num_classes = len(data.class_names)
    result = coco_scores(predictions, num_classes)
    p = predictions
    voc = {name: voc_evaluate(p.gt_boxes, p.gt_classes, p.boxes, p.scores, p.classes,
                              num_classes, use_07_metric=use_07)
           for name, use_07 in (("voc07_map", True), ("voc_map", False))}
    test_metrics = {f"test_{name}": result.as_dict()[stat] for stat, name in TEST_METRICS.items()}
    test_metrics.update({f"test_{name}": float(v["mAP"]) for name, v in voc.items()})
    names = [n.replace(" ", "_") for n in data.class_names]
    for name, ap in zip(names, voc["voc_map"]["ap"]):
        if ap == ap:  # NaN: no ground truth of the class in the test split
            test_metrics[f"test_ap50_{name}"] = float(ap)
    tracker.log_metrics(test_metrics)
    log(f"Test: AP {test_metrics['test_ap']:.4f}, AP50 {test_metrics['test_ap50']:.4f}, "
        f"AP75 {test_metrics['test_ap75']:.4f}, VOC07 mAP {test_metrics['test_voc07_map']:.4f} "
        f"({len(p.gt_boxes)} images, {best.name})")
    paths = detection_report.write_detection_report(
        Path(run_dir) / "plots", history=state.history, coco_result=result,
        predictions=predictions, class_names=data.class_names)
    for path in paths:
        tracker.log_artifact(path, "report")
    tracker.log_artifact(Path(run_dir) / "config.yaml")
    tracker.log_artifact(Path(run_dir) / "results.csv")
    # YOLO v1 / SSD are logged as their detector (decode + NMS in the graph), so the logged
    # model is what `kcv detect` and `kcv export` need; the R-CNN family already is one.
    logged = detector.model if data.family != "single_shot" else make_inference_model(
        model, score_threshold=config.score_threshold, iou_threshold=config.iou_threshold,
        max_detections=config.max_detections)
    model_uri = tracker.log_model(logged, p.sample_inputs, p.sample_outputs)
    version = None
    if config.register:
        version = tracker.register(model_uri, config.register, config.alias)
        alias = f" (alias @{config.alias})" if config.alias else ""
        log(f"Registered {config.register} version {version}{alias}.")
    return {"test_metrics": test_metrics, "model_uri": model_uri, "registered_version": version}
