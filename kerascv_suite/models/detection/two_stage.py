"""What Fast and Faster R-CNN share: a stride-16 backbone, a RoI box head, the head's
training targets and loss, and the in-graph decode + NMS of the detection contract."""

import keras
from keras import ops

from kerascv_suite.bounding_box import BalancedPositiveNegativeSampler, BoxCoder, Matcher
from kerascv_suite.losses.rcnn_losses import fast_rcnn_loss
from kerascv_suite.models.metadata import BOX_FORMAT, HasMetadata, stored_metadata, with_metadata
from kerascv_suite.models.detection import proposals as P
from kerascv_suite.models.detection.backbones import stride16_backbone
from kerascv_suite.models.detection.roi_heads import RoIBoxHead

STRIDE = 16


def sampler_from(value, default_size, default_fraction, seed_generator):
    """A balanced sampler (from None, a config dict or a sampler) drawing from the model's
    tracked `SeedGenerator`, so its random state lives in the model's variables (jax)."""
    if isinstance(value, BalancedPositiveNegativeSampler):
        value = value.get_config()
    value = dict(value or {})
    return BalancedPositiveNegativeSampler(
        value.get("batch_size_per_image", default_size),
        value.get("positive_fraction", default_fraction), seed=seed_generator)


def decoder_settings(model, score_threshold=None, iou_threshold=None, max_detections=None):
    """`{"score_threshold", "iou_threshold", "max_detections"}`: the values given, else those
    of `model` (an R-CNN-family detector: `score_threshold`, `nms_threshold`,
    `max_detections` attributes)."""
    return {
        "score_threshold": float(model.score_threshold if score_threshold is None
                                 else score_threshold),
        "iou_threshold": float(model.nms_threshold if iou_threshold is None
                               else iou_threshold),
        "max_detections": int(model.max_detections if max_detections is None
                              else max_detections),
    }


def detector_facts(model):
    """The metadata an R-CNN-family detector's constructor arguments determine."""
    return {"task": "detection", "input_shape": model.image_shape,
            "preprocessing": model.preprocessing,
            "decoder": {"family": model.family, "box_format": BOX_FORMAT,
                        "num_classes": model.num_classes, **decoder_settings(model)}}


def _part_config(part):
    return None if part is None else part.get_config()


class TwoStageDetector(HasMetadata, keras.Model):
    """Base of the R-CNN detectors that pool RoIs from one backbone pass.

    Subclasses set `family` (the `decoder["family"]` of their metadata) and implement
    `_proposals(inputs, features, training)` returning
    `(proposals (batch, R, 4), valid (batch, R), extras dict)` and may add losses in
    `_extra_losses(extras, gt, training)`.

    `call(inputs, training=False)` returns the detection contract (`boxes`, `scores`,
    `classes`, `num_detections`); with `training=True` it returns the raw tensors the loss
    needs (features, proposals, RPN outputs). `compute_loss` reads the ground truth from the
    batch (see `proposals.gt_from_batch`), samples RoIs, runs the box head on them and adds
    the multi-task loss, so `model.fit` works on every backend without a custom train step.

    `score_threshold`, `nms_threshold` and `max_detections` are the defaults of the
    inference post-processing; `call` takes other values as arguments
    (`models.detection.Detector` passes them), so running with other settings never changes
    the model. `metadata` holds the model's metadata (see `models.metadata`); its task,
    input shape, preprocessing and decoder settings are read from the arguments above.
    """

    family = None

    def __init__(self, num_classes, input_shape, backbone, preprocessing, pooling, pool_size,
                 head_units, head_dropout, box_matcher, box_sampler, box_coder, bg_iou_low,
                 score_threshold, nms_threshold, max_detections, classifier_activation,
                 roi_head, seed, metadata=None, **kwargs):
        super().__init__(**kwargs)
        with_metadata(self, **dict(metadata or {}))
        if classifier_activation not in ("softmax", "sigmoid"):
            raise ValueError("classifier_activation must be 'softmax' or 'sigmoid'. "
                             f"Received: classifier_activation={classifier_activation!r}")
        self.num_classes = int(num_classes)
        self.image_shape = tuple(input_shape)
        self.backbone_name = backbone
        self.preprocessing = preprocessing
        self.pooling = pooling
        self.pool_size = int(pool_size)
        self.head_units = tuple(head_units)
        self.head_dropout = float(head_dropout)
        self.bg_iou_low = float(bg_iou_low)
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)
        self.max_detections = int(max_detections)
        self.classifier_activation = classifier_activation
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.box_matcher = P.matcher_from(box_matcher, Matcher(0.5, 0.5))
        self.box_sampler = sampler_from(box_sampler, 128, 0.25, self.seed_generator)
        self.box_coder = P.coder_from(box_coder, BoxCoder(weights=(10.0, 10.0, 5.0, 5.0)))

        self.backbone, self.feature_channels = stride16_backbone(backbone, input_shape,
                                                                 preprocessing)
        self.feature_shape = tuple(self.backbone.output.shape[1:3])
        self.roi_head = roi_head or RoIBoxHead(
            num_classes, pooling=pooling, pool_size=pool_size, spatial_scale=1.0 / STRIDE,
            units=head_units, dropout=head_dropout, name="roi_head")
        feature_spec = (None, *self.feature_shape, self.feature_channels)
        if not self.roi_head.built:
            self.roi_head.build([feature_spec, (None, None, 4)])

    # === Forward ===
    def _features(self, inputs, training):
        return self.backbone(P.images_from_batch(inputs), training=training)

    def call(self, inputs, training=False, score_threshold=None, iou_threshold=None,
             max_detections=None):
        """The detection contract (or, with `training=True`, the tensors the loss needs).

        `score_threshold`, `iou_threshold` (NMS) and `max_detections`: post-processing of
        this call; None uses the model's defaults.
        """
        features = self._features(inputs, training)
        proposals, valid, extras = self._proposals(inputs, features, bool(training))
        if training:
            return {"features": features, "proposals": proposals, "proposal_valid": valid,
                    **extras}
        return self.detect_from(features, proposals, valid, score_threshold=score_threshold,
                                iou_threshold=iou_threshold, max_detections=max_detections)

    def detect_from(self, features, proposals, valid, training=False, score_threshold=None,
                    iou_threshold=None, max_detections=None):
        """Box head on `proposals` then per-class decode + NMS (the detection contract)."""
        logits, deltas = self.roi_head([features, proposals], training=training)
        scores = (ops.softmax(logits, axis=-1) if self.classifier_activation == "softmax"
                  else ops.sigmoid(logits))
        settings = self.decoder_settings(score_threshold, iou_threshold, max_detections)
        return P.detect(scores, deltas, proposals, valid, self.image_shape[:2],
                        coder=self.box_coder, score_threshold=settings["score_threshold"],
                        nms_threshold=settings["iou_threshold"],
                        max_detections=settings["max_detections"])

    def decoder_settings(self, score_threshold=None, iou_threshold=None, max_detections=None):
        """The post-processing settings of a call: the arguments given, else the model's."""
        return decoder_settings(self, score_threshold, iou_threshold, max_detections)

    def metadata_facts(self):
        return detector_facts(self)

    # === Loss ===
    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if not isinstance(y_pred, dict) or "features" not in y_pred:
            # evaluate() hands over the detections; the loss needs the raw tensors.
            features = self._features(x, False)
            proposals, valid, extras = self._proposals(x, features, True)
            y_pred = {"features": features, "proposals": proposals, "proposal_valid": valid,
                      **extras}
        gt_boxes, gt_classes, gt_valid = P.gt_from_batch(x, y)
        rois, labels, targets = P.sample_rois(
            y_pred["proposals"], y_pred["proposal_valid"], gt_boxes, gt_classes, gt_valid,
            self.box_sampler, matcher=self.box_matcher, bg_iou_low=self.bg_iou_low,
            coder=self.box_coder)
        logits, deltas = self.roi_head([y_pred["features"], rois], training=training)
        cls_loss, box_loss = fast_rcnn_loss(logits, deltas, labels, targets)
        total = cls_loss + box_loss
        for loss in self._extra_losses(y_pred, (gt_boxes, gt_classes, gt_valid)):
            total = total + loss
        for loss in self.sampled_roi_losses(x, y, y_pred, rois, labels):
            total = total + loss
        for loss in self.losses:
            total = total + ops.cast(ops.sum(loss), total.dtype)
        return total

    def _extra_losses(self, y_pred, gt):
        return ()

    def sampled_roi_losses(self, x, y, y_pred, rois, labels):
        """Losses of further RoI heads on the box head's sampled RoIs (Mask R-CNN's mask
        loss): `x`, `y` the batch, `y_pred` the training tensors, `rois (batch, R, 4)` and
        `labels (batch, R)` as `proposals.sample_rois` returns them (positives first).
        Returns a sequence of scalars; none here."""
        return ()

    # === Config ===
    def get_config(self):
        return {
            "name": self.name, "trainable": self.trainable,
            "num_classes": self.num_classes, "input_shape": self.image_shape,
            "backbone": self.backbone_name, "preprocessing": self.preprocessing,
            "pooling": self.pooling, "pool_size": self.pool_size,
            "head_units": self.head_units, "head_dropout": self.head_dropout,
            "box_matcher": _part_config(self.box_matcher),
            "box_sampler": {"batch_size_per_image": self.box_sampler.batch_size_per_image,
                            "positive_fraction": self.box_sampler.positive_fraction},
            "box_coder": _part_config(self.box_coder), "bg_iou_low": self.bg_iou_low,
            "score_threshold": self.score_threshold, "nms_threshold": self.nms_threshold,
            "max_detections": self.max_detections,
            "classifier_activation": self.classifier_activation,
            "roi_head": keras.saving.serialize_keras_object(self.roi_head),
            "seed": self.seed, "metadata": stored_metadata(self),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("roi_head", "rpn_head"):
            if isinstance(config.get(key), dict):
                config[key] = keras.saving.deserialize_keras_object(config[key])
        for key in ("input_shape", "head_units"):
            config[key] = tuple(config[key])
        return cls(**config)
