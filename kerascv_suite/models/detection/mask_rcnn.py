"""Mask R-CNN (He, Gkioxari, Dollár, Girshick, "Mask R-CNN", ICCV 2017) on our Faster R-CNN.

A Faster R-CNN with RoIAlign and a third head, a small FCN predicting one 28 x 28 mask per
class for each RoI (`mask_head.MaskHead`). The backbone is the Faster R-CNN builder's
stride-16 one (VGG16, or ResNet-50 to conv4 as the paper's C4 variant); the mask head is the
paper's Fig. 4 (right) head on those features (no FPN, no res5 mask head).
"""

import keras
import numpy as np
from keras import ops

from kerascv_suite.losses.mask_losses import mask_rcnn_loss
from kerascv_suite.models.detection import proposals as P
from kerascv_suite.models.detection.faster_rcnn import FasterRCNN
from kerascv_suite.models.detection.inference import CONTRACT_KEYS, Detector
from kerascv_suite.models.detection.mask_head import (MaskHead, class_masks, mask_head_params,
                                                      mask_targets, paste_masks)
from kerascv_suite.models.detection.two_stage import STRIDE
from kerascv_suite.models.registry import register_model
from kerascv_suite.models.weights import load_weights

PAPER = ("He, Gkioxari, Dollár, Girshick, 'Mask R-CNN', ICCV 2017")
TASK = "instance_segmentation"


@keras.saving.register_keras_serializable(package="kerascv_suite")
class MaskRCNN(FasterRCNN):
    """Faster R-CNN plus a mask branch on the same RoIs.

    Training (paper sec. 3): the multi-task loss `L = L_cls + L_box + L_mask` (plus the RPN
    loss), `L_mask` the per-class sigmoid binary cross-entropy of the ground-truth class's
    28 x 28 mask (`losses.mask_losses.mask_rcnn_loss`) on the positive RoIs of the box
    head's sample; its targets are each RoI's matched instance mask RoIAligned to 28 x 28
    (`mask_head.mask_targets`). The mask head runs on the first
    `batch_size_per_image * positive_fraction` sampled RoIs, where `sample_rois` puts the
    positives (at most that many).

    Inference (paper sec. 3.1): the box branch's detections (decode + NMS), then the mask
    branch on the detected boxes only; each detection's mask of its class, sigmoid, is
    pasted into its box at the input's resolution.

    Args:
        mask_pool_size: RoIAlign bins of the mask head (14; masks are twice that).
        mask_channels, mask_convs: width and number of its 3x3 convs (256, 4).
        mask_sampling_ratio: RoIAlign samples per bin (2).
        mask_head: a `MaskHead`, or None to build one from the arguments above.
        mask_weight: weight of `L_mask` (1 in the paper).
        **kwargs: every `FasterRCNN` argument.

    Input: `(batch, height, width, 3)` images, or a batch dict with `images`; training also
    needs `boxes (batch, N, 4)` xyxy, `classes (batch, N)` (-1 padding) and
    `instance_masks (batch, N, height, width)` 0/1 aligned with the boxes.
    Output (inference): the detection contract plus `masks (batch, max_detections,
    height, width)` float32 in [0, 1] in input pixels (>= 0.5 is the instance; zeros for
    padding rows).
    """

    family = "mask_rcnn"

    def __init__(self, num_classes=20, input_shape=(600, 1000, 3), mask_pool_size=14,
                 mask_channels=256, mask_convs=4, mask_sampling_ratio=2, mask_head=None,
                 mask_weight=1.0, **kwargs):
        super().__init__(num_classes=num_classes, input_shape=input_shape, **kwargs)
        self.mask_pool_size = int(mask_pool_size)
        self.mask_channels = int(mask_channels)
        self.mask_convs = int(mask_convs)
        self.mask_sampling_ratio = int(mask_sampling_ratio)
        self.mask_weight = float(mask_weight)
        self.mask_head = mask_head or MaskHead(
            self.num_classes, self.mask_pool_size, 1.0 / STRIDE, self.mask_sampling_ratio,
            self.mask_channels, self.mask_convs, name="mask_head")
        if not self.mask_head.built:
            self.mask_head.build([(None, *self.feature_shape, self.feature_channels),
                                  (None, None, 4)])
        self.built = True

    @property
    def mask_rois_per_image(self):
        """RoIs per image the mask loss runs on: the sampler's largest positive count."""
        sampler = self.box_sampler
        return max(1, int(sampler.batch_size_per_image * sampler.positive_fraction))

    # === Forward ===
    def call(self, inputs, training=False, score_threshold=None, iou_threshold=None,
             max_detections=None):
        features = self._features(inputs, training)
        proposals, valid, extras = self._proposals(inputs, features, bool(training))
        if training:
            return {"features": features, "proposals": proposals, "proposal_valid": valid,
                    **extras}
        detections = self.detect_from(features, proposals, valid,
                                      score_threshold=score_threshold,
                                      iou_threshold=iou_threshold,
                                      max_detections=max_detections)
        return {**detections, "masks": self.masks_for(features, detections)}

    def masks_for(self, features, detections):
        """`(batch, N, height, width)` pasted mask probabilities of the detections."""
        boxes = detections["boxes"]
        logits = self.mask_head([features, boxes], training=False)
        masks = ops.sigmoid(class_masks(logits, detections["classes"]))
        pasted = paste_masks(masks, boxes, self.image_shape[:2])
        real = ops.cast(detections["classes"] >= 0, pasted.dtype)
        return pasted * real[:, :, None, None]

    def metadata_facts(self):
        return {**super().metadata_facts(), "task": TASK}

    # === Loss ===
    def sampled_roi_losses(self, x, y, y_pred, rois, labels):
        gt_boxes, _, gt_valid = P.gt_from_batch(x, y)
        gt_masks = ground_truth_masks(x, y)
        count = self.mask_rois_per_image
        rois, labels = rois[:, :count], labels[:, :count]
        targets = mask_targets(gt_masks, gt_boxes, gt_valid, rois, self.mask_head.mask_size)
        logits = self.mask_head([y_pred["features"], rois], training=True)
        return (self.mask_weight * mask_rcnn_loss(logits, labels, targets),)

    # === Config ===
    def get_config(self):
        return {**super().get_config(), "mask_pool_size": self.mask_pool_size,
                "mask_channels": self.mask_channels, "mask_convs": self.mask_convs,
                "mask_sampling_ratio": self.mask_sampling_ratio,
                "mask_head": keras.saving.serialize_keras_object(self.mask_head),
                "mask_weight": self.mask_weight}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("mask_head"), dict):
            config["mask_head"] = keras.saving.deserialize_keras_object(config["mask_head"])
        return super().from_config(config)


def ground_truth_masks(x, y):
    """`(batch, N, H, W)` instance masks aligned with the ground-truth boxes of a batch:
    `instance_masks` from where the boxes come (`proposals.gt_from_batch`), or the
    contract's `masks` of `(images, targets)` pairs shaped as the model's outputs.

    Raises:
        ValueError: the batch has no instance masks.
    """
    source = y if isinstance(y, dict) and "boxes" in y else x
    if isinstance(source, dict):
        for key in ("instance_masks", "masks"):
            if key in source and len(source[key].shape) == 4:
                return source[key]
    keys = sorted(source) if isinstance(source, dict) else type(source).__name__
    raise ValueError("Training Mask R-CNN needs `instance_masks` (batch, N, height, width) "
                     "aligned with `boxes` in the batch (the data's `instance_masks`). "
                     f"Received: batch keys {keys}")


def mask_rcnn(num_classes=20, input_shape=(600, 1000, 3), include_top=True, weights=None,
              pooling="roi_align", backbone="vgg16", name=None, **kwargs):
    """Builds a Mask R-CNN (see `MaskRCNN`; every `faster_rcnn` argument applies).

    Args:
        num_classes: object classes (80 on COCO, 20 on VOC).
        input_shape: `(height, width, 3)`, static.
        pooling: the box head's RoI pooling, `"roi_align"` (the paper: RoIAlign for every
            head) or `"roi_pool"`.
        backbone: `"vgg16"`, `"resnet50"` (C4) or `"small"`.
        name: model name (`mask_rcnn_<backbone>` by default).

    Returns:
        A `MaskRCNN`.
    """
    if not include_top:
        raise ValueError("A detector has no headless form; build its backbone instead. "
                         f"Received: include_top={include_top}")
    model = MaskRCNN(num_classes=num_classes, input_shape=input_shape, backbone=backbone,
                     pooling=pooling, name=name or f"mask_rcnn_{backbone}", **kwargs)
    return load_weights(model, weights)


# Tiny settings for the registry smoke tests (every backend, CPU).
_TEST_OVERRIDES = {
    "input_shape": (32, 32, 3), "num_classes": 3, "backbone": "small", "rpn_channels": 8,
    "head_units": (8, 8), "pool_size": 2, "anchor_scales": (8, 16, 32),
    "rpn_pre_nms_top_k": (32, 32), "rpn_post_nms_top_k": (8, 4), "max_detections": 4,
    "box_sampler": {"batch_size_per_image": 8, "positive_fraction": 0.25},
    "rpn_sampler": {"batch_size_per_image": 16, "positive_fraction": 0.5}, "seed": 0,
    "mask_pool_size": 2, "mask_channels": 4, "mask_convs": 1,
}

# num_params: the Faster R-CNN counts (faster_rcnn.py) + the mask head (mask_head.py), C = 20:
#   VGG16: 137,073,622 + 3,217,684; RoIAlign has no weights.
#   resnet50 (C4): 65,869,846 + 4,397,332.
register_model("mask_rcnn", mask_rcnn, task=TASK, paper=PAPER,
               num_params=137_073_622 + mask_head_params(512, 20),
               test_overrides=_TEST_OVERRIDES, backbone="vgg16", head_dropout=0.5)
register_model("mask_rcnn_resnet50", mask_rcnn, task=TASK, paper=PAPER,
               num_params=65_869_846 + mask_head_params(1024, 20),
               test_overrides=_TEST_OVERRIDES, backbone="resnet50", head_units=(1024, 1024))
# mask_rcnn_small, C = 3 (CPU): faster_rcnn_small's 4,272,513 with RoIAlign, plus a mask
#   head of 64 channels and 2 convs on the 256-channel small backbone: 9*256*64+64 =
#   147,520, 9*64*64+64 = 36,928, deconv 4*64*64+64 = 16,448, predictor 64*3+3 = 195.
register_model("mask_rcnn_small", mask_rcnn, task=TASK, paper=PAPER,
               num_params=4_272_513 + mask_head_params(256, 3, 64, 2),
               test_overrides=_TEST_OVERRIDES, backbone="small",
               input_shape=(128, 128, 3), num_classes=3, rpn_channels=256,
               anchor_scales=(16, 32, 64), head_units=(256, 256), pool_size=7,
               rpn_pre_nms_top_k=(1000, 500), rpn_post_nms_top_k=(256, 100),
               box_sampler={"batch_size_per_image": 64, "positive_fraction": 0.25},
               mask_channels=64, mask_convs=2)


def is_instance_segmenter(model) -> bool:
    """Whether `model` is a Mask R-CNN (training form or `DetectorInferenceModel`)."""
    return isinstance(getattr(model, "detector", model), MaskRCNN)


class InstanceDetector(Detector):
    """`Detector` for Mask R-CNN: `predict` also returns the pasted `masks`
    `(batch, max_detections, height, width)` float32 in [0, 1] (input pixels).

    Args:
        model: a `MaskRCNN` (or its `DetectorInferenceModel`); not changed.
        score_threshold, iou_threshold, max_detections: post-processing, as `Detector`.
    """

    def __init__(self, model, score_threshold=None, iou_threshold=None, max_detections=None):
        if not is_instance_segmenter(model):
            raise ValueError("InstanceDetector runs a Mask R-CNN. "
                             f"Received: model={type(model).__name__}")
        super().__init__(model, score_threshold=score_threshold,
                         iou_threshold=iou_threshold, max_detections=max_detections)

    def predict(self, images, proposals=None):
        """`{"boxes", "scores", "classes", "num_detections", "masks"}` numpy arrays."""
        out = self.model.predict_on_batch(self.inputs_for(images, proposals))
        return {key: np.asarray(out[key]) for key in (*CONTRACT_KEYS, "masks")}
