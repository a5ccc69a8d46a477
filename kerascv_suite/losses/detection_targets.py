"""Packing a detection batch into the single target tensor the detector losses take."""

from keras import ops


def pack_detection_targets(boxes, classes):
    """Packs the batch contract's `boxes` and `classes` into one `y_true` tensor.

    Keras hands a loss one target per model output, so the detectors, whose training models
    have a single output, take their ground truth as one tensor: the last axis holds
    `x1, y1, x2, y2, class`.

    Args:
        boxes: `(batch, num_boxes, 4)` absolute-pixel xyxy boxes.
        classes: `(batch, num_boxes)` class ids 0..C-1, -1 for padding.

    Returns:
        `(batch, num_boxes, 5)` float32.

    Example:
        >>> y = pack_detection_targets(batch["boxes"], batch["classes"])
        >>> model.fit(batch["images"], y)
    """
    boxes = ops.cast(boxes, "float32")
    classes = ops.cast(classes, "float32")[..., None]
    return ops.concatenate([boxes, classes], axis=-1)


def unpack_detection_targets(y_true):
    """Splits a packed target into `(boxes (b, n, 4), classes (b, n) int32, valid (b, n))`."""
    boxes = y_true[..., :4]
    classes = ops.cast(ops.round(y_true[..., 4]), "int32")
    return boxes, classes, classes >= 0
