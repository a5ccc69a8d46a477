"""Object detection: VOC / COCO / YOLO folders (or the built-in shapes) -> a detector.

How each family trains (see `kerascv_suite.models.detection`):

* YOLO v1 and SSD: `(images, pack_detection_targets(boxes, classes))` batches, compiled with
  `make_loss(model)` (the paper's loss); the logged model is `make_inference_model(model)`,
  the training graph plus decode + NMS, so `kcv detect` and `kcv export` get a detector.
* Faster R-CNN: batch dicts `{"images", "boxes", "classes"}`; the model computes its RPN and
  box-head losses itself (`compute_loss`), so it is compiled with an optimizer only.
* Fast R-CNN: batch dicts that also hold `"proposals"`: selective search, run ONCE per image
  (on the image resized to the model's input) and cached in memory and in
  `<run>/proposals/<split>.npz`. Random crops would move the objects away from their cached
  proposals, so these families train on resized images with horizontal flips only (image,
  boxes and proposals flipped together) when `augment` is `"detection"`.
* R-CNN, the paper's three stages (Girshick et al. 2014, sec. 2): (1) the same cached
  proposals; (2) `model.fit` fine-tunes the CNN on warped regions with a (C + 1)-way
  softmax; (3) per-class linear SVMs and box regressors (`fit_svms_and_regressors`), at every
  validation on at most `RCNN_VALIDATION_IMAGES` training images and once more on the whole
  training split before the test evaluation (written into `checkpoints/best.keras`).

Evaluation has ONE path (`evaluate_detector`): each image is resized to the model's input
with `resize_image`, its detections are mapped back to the image's own pixels and scored
there against the untouched ground truth (12 COCO statistics, VOC07 and VOC10+ mAP@0.5).
Validation AP during training, the test metrics at the end of training and `kcv evaluate`
all call it, so the same checkpoint on the same data gives the same numbers.

This module imports neither Keras nor TensorFlow at import time.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from kerascv_suite.tasks.base import (Evaluation, Task, TaskData, build_registered,
                                      check_splits, collect_evaluation_skips)
from kerascv_suite.tasks.config import TrainConfig

FORMATS = ("voc", "coco", "yolo")
AUGMENTS = ("detection", "detection_eval")
SHAPES_SIZE = 128
PROPOSAL_FAMILIES = ("fast_rcnn", "rcnn")
RCNN_VALIDATION_IMAGES = 64
VAL_METRICS = {"AP": "ap", "AP50": "ap50", "AP75": "ap75"}
TEST_METRICS = {"AP": "ap", "AP50": "ap50", "AP75": "ap75", "APs": "ap_small",
                "APm": "ap_medium", "APl": "ap_large", "AR1": "ar1", "AR10": "ar10",
                "AR100": "ar100", "ARs": "ar_small", "ARm": "ar_medium", "ARl": "ar_large"}


@dataclasses.dataclass
class DetectorConfig(TrainConfig):
    """A `TrainConfig` with detection defaults and options.

    Attributes (beyond `TrainConfig`'s):
        shapes_count: training images of the built-in `shapes` set (val and test get a
            fifth each); its images are generated at `image_size` (128 when unset).
        max_boxes: ground-truth rows per image in a batch (more are truncated, and counted).
        score_threshold, iou_threshold, max_detections: post-processing of validation and
            test detections and of the logged detector (None: the model's, the paper's).
        max_proposals: selective-search proposals per image (Fast R-CNN, R-CNN).
        val_every: validation AP every this many epochs (and always after the last one).
        num_samples: test images drawn with their detections into the report.
    """

    task: str | None = "detection"
    model: str = "faster_rcnn"
    data: str = "shapes"
    epochs: int = 20
    batch_size: int = 8
    augment: str | None = "detection"
    monitor: str = "val_ap50"
    project: str = "runs/detect"
    experiment: str = "kcv-train-detector"
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

    @property
    def decoder(self) -> dict:
        """The post-processing settings given (None ones left to the model)."""
        values = {"score_threshold": self.score_threshold, "iou_threshold": self.iou_threshold,
                  "max_detections": self.max_detections, "max_proposals": self.max_proposals}
        return {k: v for k, v in values.items() if v is not None}


def model_family(name) -> str:
    """`"single_shot"`, `"faster_rcnn"`, `"fast_rcnn"` or `"rcnn"`: how the registered
    detector `name` trains (its builder decides)."""
    from kerascv_suite.models.detection.fast_rcnn import fast_rcnn
    from kerascv_suite.models.detection.faster_rcnn import faster_rcnn
    from kerascv_suite.models.detection.rcnn import rcnn
    from kerascv_suite.models.detection.ssd import ssd
    from kerascv_suite.models.detection.yolo_v1 import yolo_v1
    from kerascv_suite.models.registry import get_spec

    families = {yolo_v1: "single_shot", ssd: "single_shot", faster_rcnn: "faster_rcnn",
                fast_rcnn: "fast_rcnn", rcnn: "rcnn"}
    spec = get_spec(name)
    if spec.task != "detection" or spec.builder not in families:
        raise ValueError(f"{name!r} is not a detector; choose one of the detection models "
                         f"(kcv models --task detection). Received: model={name!r}")
    return families[spec.builder]


# === Data ===


def reader_options(fmt, task, config) -> dict:
    """Keyword arguments of `read_dataset` for a `task` reading `fmt`: the task (VOC holds
    detection and segmentation lists; instance masks come from its SegmentationObject PNGs),
    whether COCO segmentations are read (instance segmentation: required; detection: not
    decoded at all), and the `--unknown-class` policy."""
    options = {}
    if fmt == "voc" and task == "instance_segmentation":
        options.update(task="segmentation", instance_masks=True)
    elif fmt == "voc":
        options["task"] = task
    if fmt == "coco" and task in ("detection", "instance_segmentation"):
        options["masks"] = task == "instance_segmentation"
    if fmt in ("voc", "coco", "yolo"):
        options["unknown_class_policy"] = getattr(config, "unknown_class", "error")
    return options


def input_size(config) -> tuple:
    """`(height, width)` a detector trains at: `--image-size`, the shapes size on the built-in
    set, else the registered model's input size."""
    from kerascv_suite.models.registry import get_spec

    if config.image_size:
        return (config.image_size,) * 2
    if config.data == "shapes":
        return (SHAPES_SIZE,) * 2
    return tuple(get_spec(config.model_name).input_shape[:2])


def open_splits(config, size, task="detection"):
    """`(train, val, test)` of the built-in shapes (generated at `size`) or a folder read
    for `task` ("detection" or "instance_segmentation")."""
    from kerascv_suite.data import make_shapes, read_dataset
    from kerascv_suite.data.splits import check_folder, detect_format, open_splits as split

    if config.data == "shapes":
        count, small = config.shapes_count, max(1, config.shapes_count // 5)
        return tuple(make_shapes(n, size, seed=config.seed, split=name)
                     for n, name in ((count, "train"), (small, "val"), (small, "test")))
    root = check_folder(config.data, "shapes")
    fmt = config.format or detect_format(root, "detection")
    options = reader_options(fmt, task, config)
    return split(root, fmt, config.seed, lambda name: read_dataset(root, fmt, name, **options))


def annotation_classes(dataset):
    """`(description, classes)` of each entry whose annotations are parsed already (folder
    datasets); generated data (shapes) is valid by construction and yields nothing."""
    from kerascv_suite.data.splits import SplitView

    base = dataset.dataset if isinstance(dataset, SplitView) else dataset
    indices = dataset.indices if isinstance(dataset, SplitView) else None
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
        for where, classes in annotation_classes(dataset):
            bad = classes[(classes < 0) | (classes >= num_classes)]
            if bad.size:
                raise ValueError(f"{where}: class ids {sorted(set(bad.tolist()))} lie outside "
                                 f"0..{num_classes - 1} ({num_classes} classes: "
                                 f"{list(class_names)}). Received: {name} split entry {where}")


def as_rgb(image):
    """`(H, W, 3)`: the first three channels, or a grey image repeated."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    return image[..., :3] if image.shape[-1] >= 3 else np.repeat(image, 3, axis=-1)


def model_inputs(dataset, size):
    """Every image of `dataset` resized to `size` as the evaluation sees it:
    `(len(dataset), height, width, 3)` uint8."""
    from kerascv_suite.data.image_io import resize_image

    return np.stack([resize_image(as_rgb(sample["image"]), size) for sample in dataset])


def cached_proposals(run_dir, split, images, max_proposals, log=print):
    """Selective search proposals of `images`, computed once per image and kept in
    `<run_dir>/proposals/<split>.npz` (a resumed run reads them back)."""
    import time

    from kerascv_suite.models.detection.selective_search import selective_search_batch
    from kerascv_suite.training.state import atomic_path

    path = Path(run_dir) / "proposals" / f"{split}.npz"
    key = np.asarray([len(images), *images.shape[1:3], max_proposals,
                      int(images.astype(np.int64).sum() % 1_000_003)])
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


def materialize(loader):
    """The loader's epoch-0 batches (unshuffled, eval-resized) as one dict of arrays."""
    parts = list(loader.iter_epoch(0))
    if not parts:
        raise ValueError(f"No readable image in {loader.dataset!r}.")
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def single_shot_dataset(loader):
    """`(images float32, (batch, max_boxes, 5) boxes + class id)` batches for YOLO v1 / SSD."""
    import tensorflow as tf

    # The tf.data twin of `losses.pack_detection_targets` (keras.ops would not run inside
    # a tf.data map under the jax and torch backends): boxes, then the class id as a float.
    def pack(images, targets):
        classes = tf.cast(targets["classes"], tf.float32)[..., None]
        return tf.cast(images, tf.float32), tf.concat([targets["boxes"], classes], axis=-1)

    ds = loader.as_tf_dataset(x="images", y=("boxes", "classes")).map(pack)
    return ds.apply(tf.data.experimental.assert_cardinality(len(loader)))


def dict_dataset(loader):
    """Batch dicts `{"images" float32, "boxes", "classes"}` for Faster R-CNN."""
    import tensorflow as tf

    def cast(batch):
        return {**batch, "images": tf.cast(batch["images"], tf.float32)}

    ds = loader.as_tf_dataset().map(cast)
    return ds.apply(tf.data.experimental.assert_cardinality(len(loader)))


def array_dataset(arrays, batch_size, seed, flip):
    """Batches of in-memory arrays, reshuffled every epoch; with `flip`, a random
    horizontal flip of each image with its boxes and proposals (padding rows stay zero)."""
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


# === Evaluation: one path ===


@dataclasses.dataclass
class Predictions:
    """Per-image ground truth and detections of one split, in each image's own pixels.

    `gt_ignore` marks crowd (COCO `iscrowd`) and VOC `difficult` boxes, ignored as by
    pycocotools and the VOC devkit; `images` holds the first few original images (report).
    """

    gt_boxes: list = dataclasses.field(default_factory=list)
    gt_classes: list = dataclasses.field(default_factory=list)
    gt_ignore: list = dataclasses.field(default_factory=list)
    boxes: list = dataclasses.field(default_factory=list)
    scores: list = dataclasses.field(default_factory=list)
    classes: list = dataclasses.field(default_factory=list)
    images: list = dataclasses.field(default_factory=list)
    sample_inputs: object = None
    sample_outputs: object = None


def scale_to_original(boxes, image_shape, size):
    """`(N, 4)` xyxy boxes from the `size` = `(height, width)` model input back to the
    `image_shape` original (a plain resize), clipped to the image."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    h, w = image_shape[:2]
    boxes = boxes * [w / size[1], h / size[0], w / size[1], h / size[0]]
    return np.clip(boxes, 0, [w, h, w, h])


def predict_detections(detector, dataset, batch_size, *, proposals=None, keep_images=0,
                       on_image=None):
    """Runs `detector` over every image of `dataset` (resized to the model's input) and
    maps its detections back to the image's own pixels.

    Args:
        detector: a `kerascv_suite.models.detection.inference.Detector`.
        dataset: samples with `image`, `boxes` (original pixels) and `classes`.
        batch_size: images per predict call (the last batch is padded: one traced shape).
        proposals: `(len(dataset), P, 4)` proposals on the resized images for Fast R-CNN /
            R-CNN (cached selective search), or None to let the detector compute them.
        keep_images: original images kept (with their detections) for the report.
        on_image: None, or called as `on_image(sample, result, row)` for every image, with
            the detector's batch `result` and the image's `row` in it (outputs beyond the
            boxes, e.g. Mask R-CNN's masks, are collected there).

    Returns:
        `Predictions`.
    """
    from kerascv_suite.data.dataset import batches
    from kerascv_suite.data.image_io import resize_image

    size = tuple(detector.input_size)
    out = Predictions()
    start = 0
    for batch in batches(dataset, batch_size):
        images = np.stack([resize_image(as_rgb(s["image"]), size) for s in batch])
        count = len(images)
        pad = batch_size - count
        if pad:
            images = np.concatenate([images, np.zeros((pad, *images.shape[1:]), images.dtype)])
        if proposals is not None and detector.needs_proposals:
            rois = np.asarray(proposals[start:start + count])
            if pad:
                rois = np.concatenate([rois, np.zeros((pad, *rois.shape[1:]), rois.dtype)])
            result = detector.predict(images, proposals=rois)
        else:
            result = detector.predict(images)
        start += count
        if out.sample_inputs is None:
            out.sample_inputs = images[:2].astype(np.float32)
            out.sample_outputs = {k: v[:2] for k, v in result.items()}
        for i, sample in enumerate(batch):
            n = int(result["num_detections"][i])
            out.boxes.append(scale_to_original(result["boxes"][i, :n], sample["image"].shape,
                                               size))
            out.scores.append(np.asarray(result["scores"][i, :n], np.float64))
            out.classes.append(np.asarray(result["classes"][i, :n], np.int64))
            classes = np.asarray(sample["classes"], np.int64).reshape(-1)
            out.gt_boxes.append(np.asarray(sample["boxes"], np.float64).reshape(-1, 4))
            out.gt_classes.append(classes)
            ignore = np.zeros(len(classes), bool)
            for key in ("iscrowd", "crowd", "difficult"):
                if key in sample:
                    ignore |= np.asarray(sample[key], bool).reshape(-1)
            out.gt_ignore.append(ignore)
            if on_image is not None:
                on_image(sample, result, i)
            if len(out.images) < keep_images:
                out.images.append(as_rgb(sample["image"]).astype(np.uint8))
    if not out.boxes:
        raise ValueError("The evaluation split is empty; nothing to evaluate.")
    return out


@dataclasses.dataclass
class DetectionScores:
    """COCO and VOC scores of one split's `Predictions`."""

    coco: object  # kerascv_suite.metrics.detection.COCOResult
    voc07: dict
    voc: dict
    predictions: Predictions
    class_names: list

    def metrics(self) -> dict:
        """`{ap, ap50, ..., ar_large, voc07_map, voc_map, ap50_<class>}` (no prefix)."""
        stats = self.coco.as_dict()
        metrics = {name: float(stats[stat]) for stat, name in TEST_METRICS.items()}
        metrics["voc07_map"] = float(self.voc07["mAP"])
        metrics["voc_map"] = float(self.voc["mAP"])
        for name, ap in zip(self.class_names, self.voc["ap"]):
            if ap == ap:  # NaN: no ground truth of the class in the split
                metrics[f"ap50_{name.replace(' ', '_')}"] = float(ap)
        return metrics


def score_predictions(predictions, class_names) -> DetectionScores:
    """The 12 COCO statistics and VOC07 / VOC10+ mAP@0.5 of `predictions`."""
    from kerascv_suite.metrics.detection import coco_evaluate_arrays, voc_evaluate

    p, num_classes = predictions, len(class_names)
    coco = coco_evaluate_arrays(p.gt_boxes, p.gt_classes, p.boxes, p.scores, p.classes,
                                num_classes, gt_crowd=p.gt_ignore)
    voc = {use_07: voc_evaluate(p.gt_boxes, p.gt_classes, p.boxes, p.scores, p.classes,
                                num_classes, gt_difficult=p.gt_ignore, use_07_metric=use_07)
           for use_07 in (True, False)}
    return DetectionScores(coco, voc[True], voc[False], p, list(class_names))


def evaluate_detector(detector, dataset, class_names, batch_size, *, proposals=None,
                      keep_images=0) -> DetectionScores:
    """THE detector evaluation (training's validation and test, and `kcv evaluate`):
    predictions in original image pixels, scored with COCO and VOC metrics."""
    predictions = predict_detections(detector, dataset, batch_size, proposals=proposals,
                                     keep_images=keep_images)
    return score_predictions(predictions, class_names)


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


class DetectionTask(Task):
    """R-CNN, Fast / Faster R-CNN, YOLO v1 and SSD, scored with COCO and VOC metrics."""

    name = "detection"
    config_class = DetectorConfig
    headline = {"test_ap": "test AP", "test_ap50": "AP50", "test_voc07_map": "VOC07 mAP"}

    # === Data ===

    def load_data(self, config, run_dir, log) -> TaskData:
        from kerascv_suite.data import DataLoader, build_augmenter

        family = model_family(config.model_name)
        size = input_size(config)
        train, val, test = open_splits(config, size[0])
        class_names = list(train.class_names)
        check_class_ids({"train": train, "val": val, "test": test}, class_names)
        # Before anything is written (the proposal cache lives in the run folder).
        skips = check_splits({"train": train, "val": val, "test": test}, config)
        proposals = family in PROPOSAL_FAMILIES
        eval_aug = build_augmenter("detection_eval", image_size=size)
        if config.augment and not proposals:
            train_aug = build_augmenter(config.augment, image_size=size,
                                        **(config.augment_options or {}))
        else:
            train_aug = eval_aug

        def loader(dataset, augment, shuffle, split):
            return DataLoader(dataset, config.batch_size, augment=augment,
                              keys=("images", "boxes", "classes"), shuffle=shuffle,
                              seed=config.seed, max_boxes=config.max_boxes,
                              num_workers=0 if proposals else config.workers, channels=3,
                              skips=skips, split=split)

        train_loader = loader(train, train_aug, not proposals, "train")
        loaders = {"train": train_loader}
        if not proposals:  # Keras' validation loss; proposal families have none
            loaders["val"] = loader(val, eval_aug, False, "val")
        data = TaskData(splits={"train": train, "val": val, "test": test}, loaders=loaders,
                        class_names=class_names, input_shape=(*size, 3),
                        extra={"family": family, "proposals": {}}, skips=skips)
        if proposals:
            arrays = materialize(train_loader)
            arrays["proposals"] = cached_proposals(run_dir, "train", arrays["images"],
                                                   config.max_proposals, log)
            data.extra["train_arrays"] = arrays
            for split in ("val", "test"):
                data.extra["proposals"][split] = cached_proposals(
                    run_dir, split, model_inputs(data.splits[split], size),
                    config.max_proposals, log)
            data.train = array_dataset(arrays, config.batch_size, config.seed,
                                       config.augment == "detection")
        elif family == "faster_rcnn":
            data.train, data.val = dict_dataset(train_loader), dict_dataset(loaders["val"])
        else:
            data.train = single_shot_dataset(train_loader)
            data.val = single_shot_dataset(loaders["val"])
        # Validation AP is the evaluation path (`epoch_callbacks`), in original pixels.
        return data

    # === Model ===

    def build_model(self, config, data, log):
        """A fresh detector for the data's classes; a `--weights` detector (a `.keras`
        file or MLflow URI) continues training as it is."""
        from kerascv_suite.models.resolve import get_model

        if config.freeze is not None:
            raise ValueError("Detectors train whole (no --freeze phases). "
                             f"Received: freeze={config.freeze!r}")
        if config.mixed_precision and data.extra["family"] != "single_shot":
            raise ValueError("Mixed precision is available for YOLO v1 and SSD (functional "
                             "models); the R-CNN family trains in float32. "
                             f"Received: model={config.model!r}, mixed_precision=True")
        if config.weights:
            log(f"Training on from {config.weights}.")
            return get_model(config.weights), None
        options = dict(config.model_options)
        if data.extra["family"] != "single_shot":
            # The R-CNN family holds its post-processing as constructor arguments: the
            # checkpoint then evaluates (`kcv evaluate`) as the run did.
            for key, value in (("score_threshold", config.score_threshold),
                               ("nms_threshold", config.iou_threshold),
                               ("max_detections", config.max_detections)):
                if value is not None:
                    options[key] = value
        return build_registered(config.model_name, options,
                                num_classes=len(data.class_names),
                                input_shape=data.input_shape), None

    def check_model(self, model, config, data, source):
        """A resumed or `--weights` detector must predict exactly the data's classes."""
        from kerascv_suite.models.detection.inference import detector_num_classes, \
            is_detector

        if not is_detector(model):
            raise ValueError(f"{source} is not a detector. Received: model {model.name!r}")
        count = detector_num_classes(model)
        if count != len(data.class_names):
            raise ValueError(f"Class mismatch: the model ({source}) predicts {count} classes "
                             f"but the data has {len(data.class_names)}: "
                             f"{list(data.class_names)}. Train a fresh model (no --weights) "
                             f"or use data with {count} classes. "
                             f"Received: model with {count} classes")

    def compile(self, model, config, lr, epochs, steps_per_epoch):
        """The paper's loss for YOLO v1 / SSD; the R-CNN family computes its own loss from
        the batch dict. No compiled metrics: validation AP comes from `epoch_callbacks`."""
        from kerascv_suite.models.detection.rcnn import RCNN
        from kerascv_suite.models.detection.single_shot import make_loss
        from kerascv_suite.models.detection.two_stage import TwoStageDetector
        from kerascv_suite.training.runner import make_optimizer

        own_loss = isinstance(model, (TwoStageDetector, RCNN))
        model.compile(optimizer=make_optimizer(config, lr, epochs, steps_per_epoch),
                      loss=None if own_loss else make_loss(model))

    def metadata(self, config, data):
        return {**super().metadata(config, data), "decoder": config.decoder}

    # === Evaluation ===

    def detector(self, model, config):
        from kerascv_suite.models.detection.inference import Detector

        return Detector(model, score_threshold=config.score_threshold,
                        iou_threshold=config.iou_threshold,
                        max_detections=config.max_detections,
                        max_proposals=config.max_proposals)

    def scores(self, model, config, data, split, keep_images=0) -> DetectionScores:
        return evaluate_detector(self.detector(model, config), data.splits[split],
                                 data.class_names, config.batch_size,
                                 proposals=data.extra["proposals"].get(split),
                                 keep_images=keep_images)

    def epoch_callbacks(self, config, data, run_dir, tracker):
        """Writes `val_ap`, `val_ap50`, `val_ap75` (COCO, original pixels) into the epoch's
        logs every `val_every` epochs and after the last; the checkpoint callback then
        monitors, saves and logs them."""
        import keras

        task = self

        class ValidationAP(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                if logs is None or ((epoch + 1) % config.val_every
                                    and epoch + 1 != config.epochs):
                    return
                if data.extra["family"] == "rcnn":
                    fit_rcnn_stage3(self.model, data.extra["train_arrays"],
                                    RCNN_VALIDATION_IMAGES, log=lambda _: None)
                scores = task.scores(self.model, config, data, "val")
                stats = scores.coco.as_dict()
                for stat, name in VAL_METRICS.items():
                    logs[f"val_{name}"] = stats[stat]
                print(f"Epoch {epoch + 1}: val AP {stats['AP']:.4f}, AP50 "
                      f"{stats['AP50']:.4f}, AP75 {stats['AP75']:.4f}")
                logs.update(task.extra_validation_logs(scores, epoch))

        return [ValidationAP()]

    def extra_validation_logs(self, scores, epoch) -> dict:
        """Validation metrics beyond box AP for the epoch's logs (a subclass's hook;
        `scores` is what `self.scores` returned for the val split)."""
        return {}

    def before_evaluation(self, model, config, data, best, log):
        """R-CNN's stage 3 on the whole training split, saved into the best checkpoint."""
        if data.extra["family"] == "rcnn":
            from kerascv_suite.training.state import atomic_path

            fit_rcnn_stage3(model, data.extra["train_arrays"], log=log)
            with atomic_path(best) as tmp:
                model.save(tmp)
        return model

    def evaluate(self, model, config, data, split, log) -> Evaluation:
        scores = self.scores(model, config, data, split, keep_images=config.num_samples)
        metrics = scores.metrics()
        p = scores.predictions
        skipped = collect_evaluation_skips(data, split)
        summary = (f"AP {metrics['ap']:.4f}, AP50 {metrics['ap50']:.4f}, AP75 "
                   f"{metrics['ap75']:.4f}, VOC07 mAP {metrics['voc07_map']:.4f} "
                   f"({len(p.gt_boxes)} images{f', {skipped} skipped' if skipped else ''})")
        return Evaluation(metrics, summary, sample_inputs=p.sample_inputs,
                          sample_outputs=p.sample_outputs, details=scores)

    def write_report(self, evaluation, model, config, data, history, folder):
        from kerascv_suite.training import detection_report

        scores = evaluation.details
        return detection_report.write_detection_report(
            folder, history=history, coco_result=scores.coco,
            predictions=scores.predictions, class_names=data.class_names)

    def inference_model(self, model, config):
        """YOLO v1 / SSD: the training graph plus decode + NMS (what `kcv detect` and
        `kcv export` need); the R-CNN family already is a detector."""
        from kerascv_suite.models.detection.rcnn import RCNN
        from kerascv_suite.models.detection.single_shot import make_inference_model
        from kerascv_suite.models.detection.two_stage import TwoStageDetector

        if isinstance(model, (TwoStageDetector, RCNN)):
            return model
        return make_inference_model(model, score_threshold=config.score_threshold,
                                    iou_threshold=config.iou_threshold,
                                    max_detections=config.max_detections)

