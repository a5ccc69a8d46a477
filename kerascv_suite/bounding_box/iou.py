"""IoU of corresponding boxes, on top of `keras.utils.bounding_boxes.compute_iou`."""

from keras import ops
from keras.utils.bounding_boxes import compute_iou


def elementwise_iou(boxes1, boxes2, bounding_box_format):
    """IoU of each box in `boxes1` with the box at the same position in `boxes2`.

    `compute_iou` gives the pairwise `(N, M)` table; losses that compare a prediction with
    its own target (YOLO's responsible predictor, per-anchor IoU targets) need only its
    diagonal. Each pair becomes its own batch entry of one box against one box, so no
    `N x M` table is built.

    Args:
        boxes1: `(..., 4)` boxes in `bounding_box_format`.
        boxes2: `(..., 4)` boxes, broadcastable against `boxes1` (e.g. `(batch, cells, 1, 4)`
            against `(batch, cells, B, 4)`).
        bounding_box_format: any format `keras.utils.bounding_boxes.convert_format` knows
            that needs no image size ("xyxy", "yxyx", "xywh", "center_xywh", "center_yxhw").

    Returns:
        `(...)` float IoU, the broadcast shape of the inputs without the last axis.
    """
    boxes1, boxes2 = ops.convert_to_tensor(boxes1), ops.convert_to_tensor(boxes2)
    # Adding zeros broadcasts both operands to one shape, also where the batch size is
    # only known at run time.
    boxes1, boxes2 = boxes1 + ops.zeros_like(boxes2), boxes2 + ops.zeros_like(boxes1)
    iou = compute_iou(ops.reshape(boxes1, (-1, 1, 4)), ops.reshape(boxes2, (-1, 1, 4)),
                      bounding_box_format=bounding_box_format)
    return ops.reshape(iou, ops.shape(boxes1)[:-1])
