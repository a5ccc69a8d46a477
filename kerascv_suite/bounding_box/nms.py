"""Class-aware non-maximum suppression with static shapes (jit-friendly on every backend).

`batched_nms` sorts the candidates once and suppresses them in one of two ways, both equal
to the textbook sequential greedy NMS (torchvision's `batched_nms`):

* up to `block_size` candidates: one dense `(k, k)` suppression matrix solved as a fixed
  point (the fastest way for SSD / YOLO post-processing's few hundred candidates);
* more: blockwise, as the GPU kernels of py-faster-rcnn and torchvision do with bitmasks.
  Blocks of `block_size` candidates are visited in score order; each is compared with the
  boxes already kept (only the first `max_detections` kept ever matter, so that list has a
  static size) and then with itself, greedily. Memory is O(k x block_size) instead of
  O(k^2): 4 x 12,000 RPN candidates (Ren et al. 2015's pre-NMS count) need a few hundred
  MB instead of the 18.8 GB of a dense `(4, 12000, 12000)` IoU matrix, and the visit stops
  once every image has `max_detections` kept boxes.

Boxes of different classes are kept apart by masking the suppression with class equality on
the boxes as they are (not by shifting each class by an offset, whose float32 rounding at 80
classes x 1333 px changes IoUs near the threshold).
"""

from keras import ops
from keras.utils import bounding_boxes


def _greedy_keep(suppresses, valid):
    """Greedy NMS as a fixed point (Cluster-NMS, Zheng et al. 2020, "Enhancing Geometric
    Factors in Model Learning and Inference for Object Detection and Instance Segmentation").

    Box i is kept iff it is valid and no kept box j < i suppresses it. Starting from "all
    valid kept", each sweep fixes at least the next box in score order, so the sweeps reach
    exactly the sequential greedy result after at most K (usually a handful), and stop
    there: a sweep of the fixed point changes nothing.

    Args:
        suppresses: `(batch, K, K)` bool, [b, j, i] = j precedes i and overlaps it too much.
        valid: `(batch, K)` bool.

    Returns:
        `(batch, K)` bool, the kept boxes.
    """
    suppresses = ops.cast(suppresses, "float32")

    def sweep(keep):
        # A (batch, 1, K) x (batch, K, K) product: half the time of the equivalent einsum
        # on TensorFlow's CPU kernels.
        hit = ops.matmul(ops.cast(keep, "float32")[:, None, :], suppresses)[:, 0]
        return ops.logical_and(valid, hit < 0.5)

    def cond(keep, previous):
        return ops.any(ops.not_equal(keep, previous))

    def body(keep, previous):
        # Two sweeps per loop step halve the loop's own overhead; sweeping a fixed point
        # again leaves it unchanged, so an extra sweep never alters the result.
        once = sweep(keep)
        return sweep(once), once

    first = sweep(valid)
    keep, _ = ops.while_loop(cond, body, (sweep(first), first))
    return keep


def _overlaps(boxes1, classes1, boxes2, classes2, iou_threshold):
    """`(batch, n, m)` bool: box i of `boxes1` and box j of `boxes2` have the same class
    and an IoU above `iou_threshold`."""
    iou = bounding_boxes.compute_iou(boxes1, boxes2, bounding_box_format="xyxy")
    same = ops.equal(classes1[:, :, None], classes2[:, None, :])
    return ops.logical_and(iou > iou_threshold, same)


def top_k_pairs(scores, k):
    """The `k` best (box, class) pairs of `(batch, num_boxes, num_classes)` scores.

    The same pairs, in the same order, as `ops.top_k` of the flattened
    `(batch, num_boxes * num_classes)` scores (ties go to the lower flat index), without
    ranking every pair: a box holding one of the k best pairs has its best class score
    among the k best box maxima, so the boxes are shortlisted first (k of num_boxes, back in
    box order so that ties still break by flat index), then their k * num_classes pairs
    ranked. On SSD300 (8,732 boxes x 20 classes, k = 400) that is 8,000 pairs ranked
    instead of 174,640.

    Returns:
        `(top_scores (batch, k), box_index (batch, k) int32, class_index (batch, k) int32)`.
    """
    num_boxes, num_classes = scores.shape[1], scores.shape[2]
    k = min(int(k), num_boxes * num_classes)
    if k >= num_boxes:
        candidates = ops.broadcast_to(ops.arange(num_boxes, dtype="int32")[None],
                                      ops.shape(scores)[:2])
    else:
        _, candidates = ops.top_k(ops.max(scores, axis=-1), k=k)
        candidates = ops.sort(ops.cast(candidates, "int32"), axis=-1)
        scores = ops.take_along_axis(scores, candidates[..., None], axis=1)
    flat = scores.shape[1] * num_classes
    top_scores, index = ops.top_k(ops.reshape(scores, (-1, flat)), k=k)
    index = ops.cast(index, "int32")
    box = ops.take_along_axis(candidates, index // num_classes, axis=1)
    return top_scores, box, index % num_classes


def batched_nms(boxes, scores, classes=None, iou_threshold=0.5, score_threshold=0.0,
                max_detections=100, pre_nms_top_k=None, box_format="xyxy", block_size=512):
    """Greedy, class-aware NMS over a batch, with padded outputs.

    As torchvision's `batched_nms`: boxes of different classes never suppress each other;
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
        pre_nms_top_k: only the `pre_nms_top_k` best-scoring boxes enter NMS (all when
            None), so at most that many are kept, even when it is below `max_detections`
            (the outputs are still padded to `max_detections`).
        box_format: format of `boxes` in and out.
        block_size: candidates suppressed together. More candidates than this go through
            blockwise suppression, in memory O(candidates x block_size).

    Returns:
        dict with `boxes (batch, max_detections, 4)`, `scores (batch, max_detections)`,
        `classes (batch, max_detections)` int32, `indices (batch, max_detections)` int32
        (positions in the input), `num_detections (batch,)` int32. Padding rows have score
        0, box 0, class -1 and index -1.
    """
    max_detections, block_size = int(max_detections), int(block_size)
    if max_detections < 1:
        raise ValueError(f"`max_detections` must be at least 1. Received: "
                         f"max_detections={max_detections}")
    if pre_nms_top_k is not None and int(pre_nms_top_k) < 1:
        raise ValueError(f"`pre_nms_top_k` must be at least 1 or None. Received: "
                         f"pre_nms_top_k={pre_nms_top_k}")
    if block_size < 1:
        raise ValueError(f"`block_size` must be at least 1. Received: block_size={block_size}")
    boxes = ops.convert_to_tensor(boxes, "float32")
    scores = ops.convert_to_tensor(scores, "float32")
    if box_format != "xyxy":
        boxes = bounding_boxes.convert_format(boxes, source=box_format, target="xyxy")
    num_boxes = boxes.shape[1]
    if classes is None:
        classes = ops.zeros(ops.shape(scores), "int32")
    classes = ops.cast(classes, "int32")
    positions = ops.broadcast_to(ops.arange(num_boxes, dtype="int32")[None], ops.shape(classes))
    valid = ops.logical_and(scores > score_threshold, classes >= 0)
    k = num_boxes if pre_nms_top_k is None else min(int(pre_nms_top_k), num_boxes)
    ranked = ops.where(valid, scores, -float("inf"))
    _, order = ops.top_k(ranked, k=k)
    take = lambda t: ops.take_along_axis(t, order, axis=1)
    candidates = (ops.take_along_axis(boxes, order[..., None], axis=1), take(scores),
                  take(classes), take(positions), take(valid))
    if k <= block_size:
        pick, num = _dense_nms(candidates, iou_threshold, max_detections)
    else:
        pick, num = _blockwise_nms(candidates, iou_threshold, max_detections, block_size)
    out = _gather(candidates, pick, num, max_detections)
    if box_format != "xyxy":
        out["boxes"] = bounding_boxes.convert_format(out["boxes"], source="xyxy",
                                                     target=box_format)
    return out


def _dense_nms(candidates, iou_threshold, max_detections):
    """`(pick (batch, min(k, max_detections)), num (batch,))`: the sorted-candidate indices
    of the first kept boxes, and how many were kept, from one `(k, k)` matrix."""
    k = candidates[0].shape[1]
    suppress = lambda *c: _dense_keep(*c, iou_threshold=iou_threshold,
                                      max_detections=max_detections)
    short = max(max_detections, k // 4)
    if short >= k:
        return suppress(*candidates)
    # Valid candidates rank first and only they can be kept or suppress others, so when no
    # image has more than `short` of them, NMS over the first `short` is the same NMS at up
    # to 1/16 of the pairwise cost (trained detectors leave most candidates under the score
    # threshold).
    fits = ops.max(ops.sum(ops.cast(candidates[-1], "int32"), axis=1)) <= short

    def short_path():
        pick, num = suppress(*(c[:, :short] for c in candidates))
        width = min(k, max_detections) - pick.shape[1]
        return (ops.pad(pick, ((0, 0), (0, width))) if width else pick), num

    return ops.cond(fits, short_path, lambda: suppress(*candidates))


def _dense_keep(boxes, scores, classes, positions, valid, iou_threshold, max_detections):
    k = boxes.shape[1]
    earlier = ops.arange(k)[:, None] < ops.arange(k)[None, :]
    overlap = _overlaps(boxes, classes, boxes, classes, iou_threshold)
    keep = _greedy_keep(ops.logical_and(overlap, earlier[None]), valid)
    # The first kept boxes, in score order.
    slot = ops.where(keep, k - ops.arange(k)[None, :], 0)
    _, pick = ops.top_k(slot, k=min(k, max_detections))
    num = ops.sum(ops.cast(keep, "int32"), axis=1)
    return ops.cast(pick, "int32"), num


def _blockwise_nms(candidates, iou_threshold, max_detections, block_size):
    """As `_dense_nms`, block by block: memory O(k x block_size).

    The state is the list of kept sorted-candidate indices, `(batch, capacity)` with
    capacity = min(k, max_detections) rounded up to whole blocks (plus a last slot that
    swallows the writes of boxes kept beyond the capacity, which never matter: a box's fate
    depends only on the kept boxes before it). Block t is suppressed by the kept list (chunk
    by chunk, only the filled chunks), then greedily within itself, and its kept boxes are
    appended. The loop ends when every image is full or out of valid candidates.
    """
    boxes, _, classes, _, valid = candidates
    k = boxes.shape[1]
    size = block_size
    num_blocks = -(-k // size)
    pad = num_blocks * size - k
    if pad:
        boxes = ops.pad(boxes, ((0, 0), (0, pad), (0, 0)))
        classes = ops.pad(classes, ((0, 0), (0, pad)), constant_values=-1)
        valid = ops.pad(ops.cast(valid, "int32"), ((0, 0), (0, pad))) > 0
    capacity = min(k, max_detections)
    num_chunks = -(-capacity // size)
    slots = num_chunks * size
    block_boxes = ops.reshape(boxes, (-1, num_blocks, size, 4))
    block_classes = ops.reshape(classes, (-1, num_blocks, size))
    block_valid = ops.reshape(valid, (-1, num_blocks, size))
    num_valid = ops.sum(ops.cast(valid, "int32"), axis=1)
    earlier = (ops.arange(size)[:, None] < ops.arange(size)[None, :])[None]
    within = ops.arange(size, dtype="int32")[None, :]

    def suppressed_by_kept(kept, count, these_boxes, these_classes):
        chunks = ops.reshape(kept[:, :slots], (-1, num_chunks, size))
        used = ops.minimum((ops.max(count) + size - 1) // size, num_chunks)

        def body(s, hit):
            index = ops.take(chunks, s, axis=1)
            filled = s * size + within < count[:, None]
            overlap = _overlaps(these_boxes, these_classes,
                                ops.take_along_axis(boxes, index[..., None], axis=1),
                                ops.where(filled, ops.take_along_axis(classes, index, axis=1),
                                          -1), iou_threshold)
            return s + 1, ops.logical_or(hit, ops.any(overlap, axis=2))

        hit = ops.zeros(ops.shape(these_classes), "bool")
        _, hit = ops.while_loop(lambda s, hit: s < used, body,
                                (ops.convert_to_tensor(0, "int32"), hit))
        return hit

    def cond(t, kept, count):
        active = ops.logical_and(count < capacity, t * size < num_valid)
        return ops.logical_and(t < num_blocks, ops.any(active))

    def body(t, kept, count):
        these_boxes = ops.take(block_boxes, t, axis=1)
        these_classes = ops.take(block_classes, t, axis=1)
        hit = suppressed_by_kept(kept, count, these_boxes, these_classes)
        alive = ops.logical_and(ops.take(block_valid, t, axis=1), ops.logical_not(hit))
        overlap = _overlaps(these_boxes, these_classes, these_boxes, these_classes,
                            iou_threshold)
        keep = _greedy_keep(ops.logical_and(overlap, earlier), alive)
        # Append the block's kept boxes in order; the rest (and any beyond the capacity)
        # write to the last slot.
        rank = count[:, None] + ops.cumsum(ops.cast(keep, "int32"), axis=1) - 1
        slot = ops.where(ops.logical_and(keep, rank < capacity), rank, slots)
        rows = ops.zeros_like(slot) + ops.arange(ops.shape(slot)[0], dtype="int32")[:, None]
        index = ops.stack([ops.reshape(rows, (-1,)), ops.reshape(slot, (-1,))], axis=1)
        position = ops.zeros_like(slot) + t * size + within
        kept = ops.scatter_update(kept, index, ops.reshape(position, (-1,)))
        count = count + ops.sum(ops.cast(keep, "int32"), axis=1)
        return t + 1, kept, count

    kept = ops.zeros((ops.shape(valid)[0], slots + 1), "int32")
    count = ops.zeros(ops.shape(num_valid), "int32")
    _, kept, count = ops.while_loop(cond, body, (ops.convert_to_tensor(0, "int32"), kept, count))
    return kept[:, :capacity], count


def _gather(candidates, pick, num, max_detections):
    """The padded `batched_nms` outputs of sorted-candidate indices `pick`."""
    boxes, scores, classes, positions, _ = candidates
    width = max_detections - pick.shape[1]
    if width:
        pick = ops.pad(pick, ((0, 0), (0, width)))
    num = ops.minimum(num, max_detections)
    filled = ops.arange(max_detections)[None, :] < num[:, None]
    return {
        "boxes": ops.where(filled[..., None],
                           ops.take_along_axis(boxes, pick[..., None], axis=1), 0.0),
        "scores": ops.where(filled, ops.take_along_axis(scores, pick, axis=1), 0.0),
        "classes": ops.where(filled, ops.take_along_axis(classes, pick, axis=1), -1),
        "indices": ops.where(filled, ops.take_along_axis(positions, pick, axis=1), -1),
        "num_detections": ops.cast(num, "int32"),
    }
