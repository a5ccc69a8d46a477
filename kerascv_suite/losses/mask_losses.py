"""Mask R-CNN's mask loss."""

from keras import ops


def mask_rcnn_loss(mask_logits, labels, targets):
    """Per-class sigmoid mask loss (He et al., "Mask R-CNN", ICCV 2017, sec. 3).

    "L_mask is defined as the average binary cross-entropy loss", on positive RoIs only,
    and "for an RoI associated with ground-truth class k, L_mask is only defined on the
    k-th mask (other mask outputs do not contribute to the loss)": masks do not compete
    between classes.

    Args:
        mask_logits: `(batch, R, M, M, K)` logits, one mask per real class.
        labels: `(batch, R)` int: 0 background, 1..K classes, -1 not sampled (the box
            head's sampled labels; only labels > 0 contribute).
        targets: `(batch, R, M, M)` 0/1 mask targets.

    Returns:
        A scalar: the mean over positive RoIs of the per-pixel mean binary cross-entropy of
        their class's mask (0 with no positive RoI).
    """
    labels = ops.cast(labels, "int32")
    index = ops.maximum(labels - 1, 0)[:, :, None, None, None]
    chosen = ops.take_along_axis(ops.cast(mask_logits, "float32"), index, axis=-1)[..., 0]
    bce = ops.binary_crossentropy(ops.cast(targets, "float32"), chosen, from_logits=True)
    per_roi = ops.mean(bce, axis=(-2, -1))
    positive = ops.cast(labels > 0, "float32")
    return ops.sum(per_roi * positive) / ops.maximum(ops.sum(positive), 1.0)
