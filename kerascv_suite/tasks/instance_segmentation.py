"""Instance segmentation: Mask R-CNN on the built-in shapes or a COCO / VOC / YOLO folder.

The task is detection plus one mask per object (`DetectionTask` does the rest: run folder,
resume, MLflow, registry and the one evaluation path come through it unchanged).

* Data: samples carry `instance_masks` `(N, H, W)` uint8 0/1 aligned with `boxes`.
  `InstanceAugmenter` moves the masks with the image and its boxes (albumentations' `masks`
  target: each mask nearest-neighbour resampled) and hands them to the `DataLoader` as one
  instance-id map (`mask`: 0 background, k + 1 for the k-th kept box); `instance_dataset`
  turns the map back into `instance_masks (batch, max_boxes, H, W)` batch tensors. Where two
  instances overlap, the later box keeps the shared pixels (the shapes set never overlaps).
* Evaluation (`evaluate_instances`, ONE path for validation, test and `kcv evaluate`): the
  detector's pasted masks are resized from the model input to each image's own pixels,
  thresholded at `mask_threshold`, encoded as COCO RLE and scored with
  `coco_evaluate(iou_type="segm")` (= pycocotools) beside the box AP of `DetectionTask`.

This module imports neither Keras nor TensorFlow at import time.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from kerascv_suite.data.augment import Augmenter, preset
from kerascv_suite.tasks.base import Evaluation, TaskData, check_splits
from kerascv_suite.tasks.detection import (TEST_METRICS, VAL_METRICS,
                                           DetectionScores, DetectionTask, DetectorConfig,
                                           check_class_ids, input_size, open_splits,
                                           predict_detections, score_predictions)

TASK = "instance_segmentation"
FAMILY = "mask_rcnn"
MASK_METRICS = TEST_METRICS  # the same 12 COCO statistics, for masks (`mask_` prefix)


@dataclasses.dataclass
class InstanceSegmenterConfig(DetectorConfig):
    """A `DetectorConfig` for Mask R-CNN.

    Attributes (beyond `DetectorConfig`'s):
        mask_threshold: a pasted mask probability at or above it is the instance (0.5 in
            the paper) in evaluation.
    """

    task: str | None = TASK
    model: str = "mask_rcnn"
    monitor: str = "val_mask_ap50"
    project: str = "runs/segment-instances"
    experiment: str = "kcv-train-instance-segmenter"
    mask_threshold: float = 0.5

    def __post_init__(self):
        super().__post_init__()
        if not 0 < self.mask_threshold < 1:
            raise ValueError("mask_threshold must lie in (0, 1). "
                             f"Received: mask_threshold={self.mask_threshold}")


# === Data ===


class InstanceAugmenter(Augmenter):
    """An `Augmenter` whose output carries the moved `instance_masks` as one instance-id
    map `mask` (0 background, k + 1 for output box k; at most 254), the compact form the
    `DataLoader` batches (`instance_dataset` expands it)."""

    def __call__(self, sample, seed=None):
        # The semantic mask and keypoints are not instance segmentation's: not moved.
        sample = {k: v for k, v in sample.items() if k not in ("mask", "keypoints")}
        if "instance_masks" not in sample:
            raise ValueError(f"{sample.get('path', 'a sample')}: no instance masks; Mask "
                             "R-CNN trains on `instance_masks` aligned with `boxes`. "
                             f"Received: sample keys {sorted(sample)}")
        out = super().__call__(sample, seed)
        masks = out.pop("instance_masks")
        ids = np.zeros(out["image"].shape[:2], np.uint8)
        for row, mask in enumerate(masks[:254]):
            ids[mask == 1] = row + 1
        out["mask"] = ids
        return out


def instance_augmenter(name, image_size, **options) -> InstanceAugmenter:
    """An `InstanceAugmenter` of the augmentation preset `name` (see `data.augment`)."""
    return InstanceAugmenter(preset(name, image_size=image_size, **options))


def instance_dataset(loader, max_boxes):
    """Batch dicts `{"images" float32, "boxes", "classes", "instance_masks" (batch,
    max_boxes, H, W) uint8}` from a loader of instance-id maps (`masks`)."""
    import tensorflow as tf

    def unpack(batch):
        ids = tf.cast(batch.pop("masks"), tf.int32)
        masks = tf.one_hot(ids - 1, max_boxes, dtype=tf.uint8)  # id 0 -> all zeros
        return {**batch, "images": tf.cast(batch["images"], tf.float32),
                "instance_masks": tf.transpose(masks, (0, 3, 1, 2))}

    ds = loader.as_tf_dataset().map(unpack)
    return ds.apply(tf.data.experimental.assert_cardinality(len(loader)))


# === Evaluation: one path ===


class MaskCollector:
    """Collects, per image, the ground-truth and detected masks in the image's own pixels
    as COCO RLE (an `on_image` hook of `detection.predict_detections`)."""

    def __init__(self, mask_threshold=0.5):
        self.mask_threshold = float(mask_threshold)
        self.images, self.annotations, self.results = [], [], []

    def __call__(self, sample, result, row):
        import cv2

        from kerascv_suite.data.rle import rle_encode

        image_id = len(self.images)
        height, width = np.asarray(sample["image"]).shape[:2]
        self.images.append({"id": image_id, "height": int(height), "width": int(width)})
        if "instance_masks" not in sample:
            raise ValueError(f"{sample.get('path', f'image {image_id}')}: no instance masks; "
                             "instance segmentation is scored against the data's "
                             "`instance_masks`. Received: sample keys "
                             f"{sorted(sample)}")
        ignore = np.zeros(len(np.reshape(sample["classes"], -1)), bool)
        for key in ("iscrowd", "crowd", "difficult"):
            if key in sample:
                ignore |= np.asarray(sample[key], bool).reshape(-1)
        boxes = np.asarray(sample["boxes"], np.float64).reshape(-1, 4)
        for k, (mask, cls) in enumerate(zip(sample["instance_masks"],
                                            np.reshape(sample["classes"], -1))):
            x1, y1, x2, y2 = boxes[k]
            self.annotations.append({
                "id": len(self.annotations) + 1, "image_id": image_id,
                "category_id": int(cls), "segmentation": rle_encode(mask > 0),
                "area": float(np.count_nonzero(mask)), "iscrowd": int(ignore[k]),
                "bbox": [x1, y1, x2 - x1, y2 - y1]})
        for n in range(int(result["num_detections"][row])):
            probability = np.asarray(result["masks"][row, n], np.float32)
            if probability.shape != (height, width):
                probability = cv2.resize(probability, (int(width), int(height)),
                                         interpolation=cv2.INTER_LINEAR)
            self.results.append({
                "image_id": image_id, "category_id": int(result["classes"][row, n]),
                "score": float(result["scores"][row, n]),
                "segmentation": rle_encode(probability >= self.mask_threshold)})

    def ground_truth(self, num_classes):
        """The COCO dataset dict of the collected ground truth."""
        return {"images": self.images, "annotations": self.annotations,
                "categories": [{"id": c} for c in range(num_classes)]}


@dataclasses.dataclass
class InstanceScores(DetectionScores):
    """`DetectionScores` (boxes) plus the COCO mask statistics (`segm`) of one split."""

    segm: object = None  # kerascv_suite.metrics.detection.COCOResult

    def metrics(self) -> dict:
        """Box metrics (`DetectionScores.metrics`) and `mask_ap`, ..., `mask_ar_large`."""
        stats = self.segm.as_dict()
        return {**super().metrics(),
                **{f"mask_{name}": float(stats[stat]) for stat, name in MASK_METRICS.items()}}


def evaluate_instances(detector, dataset, class_names, batch_size, *, mask_threshold=0.5,
                       keep_images=0) -> InstanceScores:
    """THE instance segmentation evaluation (validation, test and `kcv evaluate`): box and
    mask COCO statistics in each image's own pixels.

    Args:
        detector: a `models.detection.mask_rcnn.InstanceDetector`.
        dataset: samples with `image`, `boxes`, `classes` and `instance_masks`.
        mask_threshold: probability at which a pasted mask pixel is the instance.
    """
    from kerascv_suite.metrics.detection import coco_evaluate

    collector = MaskCollector(mask_threshold)
    predictions = predict_detections(detector, dataset, batch_size, keep_images=keep_images,
                                     on_image=collector)
    boxes = score_predictions(predictions, class_names)
    segm = coco_evaluate(collector.ground_truth(len(class_names)), collector.results,
                         iou_type="segm")
    return InstanceScores(boxes.coco, boxes.voc07, boxes.voc, predictions,
                          list(class_names), segm)


class InstanceSegmentationTask(DetectionTask):
    """Mask R-CNN, scored with COCO box and mask AP."""

    name = TASK
    config_class = InstanceSegmenterConfig
    headline = {"test_mask_ap": "mask AP", "test_mask_ap50": "mask AP50",
                "test_ap50": "box AP50"}

    def load_data(self, config, run_dir, log) -> TaskData:
        from kerascv_suite.data import DataLoader
        from kerascv_suite.models.registry import get_spec

        if get_spec(config.model_name).task != TASK:
            raise ValueError(f"{config.model_name!r} is not an instance segmentation model; "
                             "choose one of `kcv models --task instance_segmentation`. "
                             f"Received: model={config.model_name!r}")
        size = input_size(config)
        train, val, test = open_splits(config, size[0], task=TASK)
        splits = {"train": train, "val": val, "test": test}
        class_names = list(train.class_names)
        check_class_ids(splits, class_names)
        skips = check_splits(splits, config)
        eval_aug = instance_augmenter("detection_eval", size)
        train_aug = (instance_augmenter(config.augment, size, **(config.augment_options or {}))
                     if config.augment else eval_aug)

        def loader(dataset, augment, shuffle, split):
            return DataLoader(dataset, config.batch_size, augment=augment,
                              keys=("images", "boxes", "classes", "masks"), shuffle=shuffle,
                              seed=config.seed, max_boxes=config.max_boxes,
                              num_workers=config.workers, channels=3, skips=skips,
                              split=split)

        loaders = {"train": loader(train, train_aug, True, "train"),
                   "val": loader(val, eval_aug, False, "val")}
        data = TaskData(splits=splits, loaders=loaders, class_names=class_names,
                        input_shape=(*size, 3), extra={"family": FAMILY, "proposals": {}},
                        skips=skips)
        data.train = instance_dataset(loaders["train"], config.max_boxes)
        data.val = instance_dataset(loaders["val"], config.max_boxes)
        return data

    def check_model(self, model, config, data, source):
        from kerascv_suite.models.detection.mask_rcnn import is_instance_segmenter

        if not is_instance_segmenter(model):
            raise ValueError(f"{source} predicts no instance masks (not a Mask R-CNN). "
                             f"Received: model {model.name!r}")
        super().check_model(model, config, data, source)

    def detector(self, model, config):
        from kerascv_suite.models.detection.mask_rcnn import InstanceDetector

        return InstanceDetector(model, score_threshold=config.score_threshold,
                                iou_threshold=config.iou_threshold,
                                max_detections=config.max_detections)

    def scores(self, model, config, data, split, keep_images=0) -> InstanceScores:
        return evaluate_instances(self.detector(model, config), data.splits[split],
                                  data.class_names, config.batch_size,
                                  mask_threshold=config.mask_threshold,
                                  keep_images=keep_images)

    def extra_validation_logs(self, scores, epoch) -> dict:
        stats = scores.segm.as_dict()
        print(f"Epoch {epoch + 1}: val mask AP {stats['AP']:.4f}, AP50 {stats['AP50']:.4f}, "
              f"AP75 {stats['AP75']:.4f}")
        return {f"val_mask_{name}": stats[stat] for stat, name in VAL_METRICS.items()}

    def evaluate(self, model, config, data, split, log) -> Evaluation:
        evaluation = super().evaluate(model, config, data, split, log)
        m = evaluation.metrics
        summary = (f"mask AP {m['mask_ap']:.4f}, mask AP50 {m['mask_ap50']:.4f}, mask AP75 "
                   f"{m['mask_ap75']:.4f}; box {evaluation.summary}")
        return dataclasses.replace(evaluation, summary=summary)
