"""Class-aware non-maximum suppression with static shapes (jit-friendly on every backend)."""

import keras
from keras import ops
from keras.utils import bounding_boxes


def _greedy_keep(suppresses, valid):
    """Greedy NMS as a fixed point.

    Box i is kept iff it is valid and no kept box j < i suppresses it. Starting from "all
    valid kept", each sweep fixes at least the next box in score order, so the loop ends
    after at most K sweeps (usually a handful) with exactly the sequential greedy result.

    Args:
        suppresses: `(batch, K, K)` bool, [b, j, i] = j precedes i and overlaps it too much.
        valid: `(batch, K)` bool.
    """
    suppresses = ops.cast(suppresses, "float32")

    def sweep(keep):
        hit = ops.einsum("bj,bji->bi", ops.cast(keep, "float32"), suppresses)
        return ops.logical_and(valid, hit < 0.5)

    def cond(keep, previous, step):
        return ops.logical_and(ops.any(ops.not_equal(keep, previous)),
                               step <= ops.shape(valid)[1])

    def body(keep, previous, step):
        return sweep(keep), keep, step + 1

    keep, _, _ = ops.while_loop(cond, body, (sweep(valid), valid, ops.convert_to_tensor(1)))
    return keep


def batched_nms(boxes, scores, classes=None, iou_threshold=0.5, score_threshold=0.0,
                max_detections=100, pre_nms_top_k=None, box_format="xyxy"):
    """Greedy, class-aware NMS over a batch, with padded outputs.

    As torchvision's `batched_nms`: boxes of different classes never suppress each other
    (each class is shifted by `class * (coordinate span + 1)`, the coordinate offset trick);
    within a class, a box is dropped when its IoU with a higher-scoring kept box exceeds
    `iou_threshold`. Boxes scoring <= `score_threshold`, or with class < 0 (padding), are
    dropped first. Every shape is static, so it runs inside a jit-compiled / exported graph.

    Args:
        boxes: `(batch, num_boxes, 4)` in `box_format`.
        scores: `(batch, num_boxes)`.
        classes: `(batch, num_boxes)` int class ids, or None for class-agnostic NMS.
        iou_threshold: suppression IoU.
        score_threshold: minimum score (exclusive).
        max_detections: outputs per image.
        pre_nms_top_k: only the top-k scoring boxes enter NMS (all when None).
        box_format: format of `boxes` in and out.

    Returns:
        dict with `boxes (batch, max_detections, 4)`, `scores (batch, max_detections)`,
        `classes (batch, max_detections)` int32, `indices (batch, max_detections)` int32
        (positions in the input), `num_detections (batch,)` int32. Padding rows have score
        0, box 0, class -1 and index -1.
    """
    boxes = ops.convert_to_tensor(boxes, "float32")
    scores = ops.convert_to_tensor(scores, "float32")
    if box_format != "xyxy":
        boxes = bounding_boxes.convert_format(boxes, source=box_format, target="xyxy")
    num_boxes = boxes.shape[1]
    if classes is None:
        classes = ops.zeros(ops.shape(scores), "int32")
    classes = ops.cast(classes, "int32")
    positions = ops.broadcast_to(ops.arange(num_boxes, dtype="int32")[None], ops.shape(classes))
    if num_boxes < max_detections:
        # top_k needs at least max_detections entries: pad with boxes that are never valid.
        pad = max_detections - num_boxes
        boxes = ops.pad(boxes, ((0, 0), (0, pad), (0, 0)))
        scores = ops.pad(scores, ((0, 0), (0, pad)), constant_values=-1.0)
        classes = ops.pad(classes, ((0, 0), (0, pad)), constant_values=-1)
        positions = ops.pad(positions, ((0, 0), (0, pad)), constant_values=-1)
        num_boxes = max_detections
    valid = ops.logical_and(scores > score_threshold, classes >= 0)
    k = num_boxes if pre_nms_top_k is None else max(min(int(pre_nms_top_k), num_boxes),
                                                    max_detections)
    ranked = ops.where(valid, scores, -float("inf"))
    top_scores, order = ops.top_k(ranked, k=k)
    take = lambda t: ops.take_along_axis(t, order, axis=1)
    top_boxes = ops.take_along_axis(boxes, order[..., None], axis=1)
    top_classes, top_positions, top_valid = take(classes), take(positions), take(valid)

    # Class offsets larger than any box extent keep classes apart.
    low = ops.min(top_boxes, axis=(1, 2), keepdims=True)
    span = ops.max(top_boxes, axis=(1, 2), keepdims=True) - low + 1.0
    shifted = top_boxes - low + ops.cast(ops.maximum(top_classes, 0), "float32")[..., None] * span
    iou = bounding_boxes.compute_iou(shifted, shifted, bounding_box_format="xyxy")
    earlier = ops.arange(k)[:, None] < ops.arange(k)[None, :]
    keep = _greedy_keep(ops.logical_and(iou > iou_threshold, earlier[None]), top_valid)

    # The first max_detections kept boxes, in score order.
    slot = ops.where(keep, k - ops.arange(k)[None, :], 0)
    _, pick = ops.top_k(slot, k=max_detections)
    num = ops.minimum(ops.sum(ops.cast(keep, "int32"), axis=1), max_detections)
    filled = ops.arange(max_detections)[None, :] < num[:, None]
    out_boxes = ops.take_along_axis(top_boxes, pick[..., None], axis=1)
    if box_format != "xyxy":
        out_boxes = bounding_boxes.convert_format(out_boxes, source="xyxy", target=box_format)
    return {
        "boxes": ops.where(filled[..., None], out_boxes, 0.0),
        "scores": ops.where(filled, ops.take_along_axis(top_scores, pick, axis=1), 0.0),
        "classes": ops.where(filled, ops.take_along_axis(top_classes, pick, axis=1), -1),
        "indices": ops.where(filled, ops.take_along_axis(top_positions, pick, axis=1), -1),
        "num_detections": ops.cast(num, "int32"),
    }
