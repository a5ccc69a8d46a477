"""SSD's multibox loss: matched smooth-L1 localization + softmax confidence, 3:1 mining."""

import keras
from keras import ops
from keras.utils import bounding_boxes

from kerascv_suite.bounding_box import BoxCoder, Matcher, ssd_default_boxes
from kerascv_suite.losses.detection_targets import unpack_detection_targets
from kerascv_suite.losses.smooth_l1 import smooth_l1


@keras.saving.register_keras_serializable(package="kerascv_suite")
class MultiboxLoss(keras.losses.Loss):
    """The SSD training objective.

    Liu et al., "SSD: Single Shot MultiBox Detector", ECCV 2016, sec. 2.2, eq. (1)-(3):
    default boxes are matched to ground truth by IoU >= `iou_threshold` (0.5), every ground
    truth also taking its best default box (`Matcher` with forced best matches); the loss is

        L = (L_conf + α L_loc) / N

    with N the number of matched default boxes over the batch (0 loss when N = 0), L_loc the
    smooth-L1 of the predicted offsets against the matched boxes encoded with SSD's variances
    (`BoxCoder.from_variances`), and L_conf the softmax cross-entropy over positives and the
    hardest negatives, at most `neg_pos_ratio` (3) negatives per positive of the same image
    ("hard negative mining"). Class 0 is background: dataset class k is logit k + 1.

    Predictions: `(batch, num_default_boxes, 4 + num_classes + 1)`, offsets then logits.
    Targets: `(batch, num_boxes, 5)` packed xyxy pixels + class id (-1 padding), see
    `pack_detection_targets`. Returns one value per image, scaled so that Keras' batch mean
    gives the paper's batch-normalized total.

    Args:
        default_boxes: keyword arguments of `ssd_default_boxes` (e.g. `bounding_box.SSD300`),
            see `ssd_default_box_config`.
        num_classes: real classes (without background).
        variances: SSD's box-coder variances.
        iou_threshold: matching IoU.
        neg_pos_ratio: negatives kept per positive.
        alpha: weight of the localization term (1 in the paper).
    """

    def __init__(self, default_boxes, num_classes=20, variances=(0.1, 0.1, 0.2, 0.2),
                 iou_threshold=0.5, neg_pos_ratio=3.0, alpha=1.0, name="multibox_loss",
                 **kwargs):
        super().__init__(name=name, **kwargs)
        self.default_boxes = {k: (list(v) if isinstance(v, (list, tuple)) else v)
                              for k, v in dict(default_boxes).items()}
        self.num_classes = int(num_classes)
        self.variances = tuple(float(v) for v in variances)
        self.iou_threshold = float(iou_threshold)
        self.neg_pos_ratio = float(neg_pos_ratio)
        self.alpha = float(alpha)
        self.coder = BoxCoder.from_variances(self.variances)
        self.matcher = Matcher(self.iou_threshold, self.iou_threshold,
                               allow_low_quality_matches=True)

    def anchors(self):
        return ssd_default_boxes(**self.default_boxes)

    def call(self, y_true, y_pred):
        anchors = self.anchors()
        if y_pred.shape[1] != anchors.shape[0] or y_pred.shape[-1] != 5 + self.num_classes:
            raise ValueError(
                f"Expected predictions (batch, {anchors.shape[0]}, {5 + self.num_classes}). "
                f"Received: y_pred.shape={y_pred.shape}")
        gt_boxes, gt_classes, valid = unpack_detection_targets(ops.cast(y_true, "float32"))
        loc, logits = y_pred[..., :4], y_pred[..., 4:]
        batch = ops.shape(y_pred)[0]

        # === Matching ===
        iou = bounding_boxes.compute_iou(anchors, gt_boxes, bounding_box_format="xyxy")
        matched, labels = self.matcher(iou, gt_valid=valid)
        positive = labels == 1
        pos_f = ops.cast(positive, "float32")
        take = lambda t: ops.take_along_axis(t, matched[..., None], axis=1)
        matched_boxes = take(gt_boxes)
        target_class = ops.where(positive, ops.squeeze(take(gt_classes[..., None]), -1) + 1, 0)

        # === Localization: smooth L1 on positives ===
        target_loc = self.coder.encode(ops.broadcast_to(anchors[None], ops.shape(loc)),
                                       matched_boxes)
        loc_loss = ops.sum(ops.sum(smooth_l1(target_loc, loc), -1) * pos_f, axis=1)

        # === Confidence: positives + the hardest 3x negatives ===
        log_probs = ops.log_softmax(logits, axis=-1)
        ce = -ops.squeeze(ops.take_along_axis(log_probs, target_class[..., None], axis=-1), -1)
        negative = ops.logical_not(positive)
        num_pos = ops.sum(pos_f, axis=1, keepdims=True)
        num_neg = ops.minimum(self.neg_pos_ratio * num_pos,
                              ops.sum(ops.cast(negative, "float32"), axis=1, keepdims=True))
        mining_loss = ops.stop_gradient(ops.where(negative, ce, -1.0))
        rank = ops.argsort(ops.argsort(-mining_loss, axis=-1), axis=-1)
        hard_negative = ops.logical_and(negative, ops.cast(rank, "float32") < num_neg)
        conf_mask = ops.cast(ops.logical_or(positive, hard_negative), "float32")
        conf_loss = ops.sum(ce * conf_mask, axis=1)

        # Normalized by the batch's positives; x batch so Keras' mean over images gives it.
        total_pos = ops.maximum(ops.sum(pos_f), 1.0)
        per_image = (conf_loss + self.alpha * loc_loss) / total_pos
        return per_image * ops.cast(batch, "float32")

    def get_config(self):
        return {**super().get_config(), "default_boxes": self.default_boxes,
                "num_classes": self.num_classes, "variances": self.variances,
                "iou_threshold": self.iou_threshold, "neg_pos_ratio": self.neg_pos_ratio,
                "alpha": self.alpha}
