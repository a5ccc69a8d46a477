"""The R-CNN family's training losses: the RPN loss and Fast R-CNN's multi-task loss."""

from keras import ops

from kerascv_suite.losses.smooth_l1 import smooth_l1


def _masked_mean(values, mask):
    mask = ops.cast(mask, values.dtype)
    return ops.sum(values * mask) / ops.maximum(ops.sum(mask), 1.0)


def rpn_loss(objectness_logits, pred_deltas, target_deltas, positive, negative, beta=1.0 / 9):
    """Region Proposal Network loss (Ren et al., "Faster R-CNN", 2015, eq. 1).

    Binary cross-entropy of the objectness over the sampled anchors (positive and negative),
    plus smooth L1 of the positives' deltas. As torchvision, both terms are normalized by
    the number of sampled anchors (the paper's N_cls = 256 and lambda = 10 with
    N_reg ~ 2,400 weigh the two terms about equally too).

    Args:
        objectness_logits: `(batch, num_anchors)` logits.
        pred_deltas, target_deltas: `(batch, num_anchors, 4)`.
        positive, negative: `(batch, num_anchors)` bool masks of the sampled anchors.
        beta: smooth-L1 transition point (torchvision's 1/9).

    Returns:
        `(classification_loss, box_loss)` scalars.
    """
    logits = ops.cast(objectness_logits, "float32")
    sampled = ops.logical_or(positive, negative)
    labels = ops.cast(positive, "float32")
    bce = ops.binary_crossentropy(labels, logits, from_logits=True)
    num_sampled = ops.maximum(ops.sum(ops.cast(sampled, "float32")), 1.0)
    cls_loss = ops.sum(bce * ops.cast(sampled, "float32")) / num_sampled
    box = ops.sum(smooth_l1(target_deltas, ops.cast(pred_deltas, "float32"), beta), axis=-1)
    box_loss = ops.sum(box * ops.cast(positive, "float32")) / num_sampled
    return cls_loss, box_loss


def fast_rcnn_loss(class_logits, pred_deltas, labels, target_deltas, box_weight=1.0, beta=1.0):
    """Fast R-CNN's multi-task loss (Girshick, "Fast R-CNN", ICCV 2015, eq. 1).

    `L = L_cls(p, u) + lambda [u >= 1] L_loc(t^u, v)`: softmax cross-entropy over the C + 1
    classes, plus smooth L1 (eq. 2-3) of the deltas predicted for the true class u, for
    foreground RoIs only. Both terms are averaged over the sampled RoIs (lambda = 1).

    Args:
        class_logits: `(batch, num_rois, num_classes + 1)`, background at index 0.
        pred_deltas: `(batch, num_rois, num_classes + 1, 4)` class-specific deltas.
        labels: `(batch, num_rois)` int: 0 background, 1..C classes, -1 not sampled.
        target_deltas: `(batch, num_rois, 4)` encoded ground truth of each RoI.
        box_weight: lambda.
        beta: smooth-L1 transition point (1 in the paper).

    Returns:
        `(classification_loss, box_loss)` scalars.
    """
    labels = ops.cast(labels, "int32")
    sampled = labels >= 0
    safe = ops.maximum(labels, 0)
    ce = ops.sparse_categorical_crossentropy(safe, ops.cast(class_logits, "float32"),
                                             from_logits=True)
    cls_loss = _masked_mean(ce, sampled)
    chosen = ops.take_along_axis(ops.cast(pred_deltas, "float32"), safe[..., None, None],
                                 axis=2)[:, :, 0]
    box = ops.sum(smooth_l1(target_deltas, chosen, beta), axis=-1)
    num_sampled = ops.maximum(ops.sum(ops.cast(sampled, "float32")), 1.0)
    box_loss = ops.sum(box * ops.cast(labels > 0, "float32")) / num_sampled
    return cls_loss, box_weight * box_loss
