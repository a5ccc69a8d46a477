"""Proposal generation, RoI sampling and detection post-processing for two-stage detectors.

Pure functions on `keras.ops` with static shapes, so they run inside the training step and
the exported graph on every backend (torchvision's `rpn.py` / `roi_heads.py` split them the
same way). Boxes are absolute-pixel `xyxy`.
"""

from keras import ops
from keras.utils import bounding_boxes

from kerascv_suite.bounding_box import (BoxCoder, Matcher, batched_nms, clip_to_image_size,
                                        rpn_anchors)
from kerascv_suite.bounding_box.matching import IGNORE, NEGATIVE
from kerascv_suite.bounding_box.nms import top_k_pairs


def clip_boxes(boxes, image_shape):
    """Clips `(batch, N, 4)` or `(N, 4)` xyxy boxes to an image of `(height, width)`.

    `keras.utils.bounding_boxes.clip_to_image_size` on the boxes alone (no labels, so
    boxes that clip to nothing stay, with zero area).
    """
    clipped = clip_to_image_size({"boxes": boxes}, height=float(image_shape[0]),
                                 width=float(image_shape[1]), bounding_box_format="xyxy")
    return clipped["boxes"]


def grid_proposals(image_shape, stride=32, scales=(64, 128, 256), aspect_ratios=(0.5, 1.0, 2.0)):
    """Image-independent sliding-window proposals, `(num, 4)` xyxy clipped to the image.

    A documented stand-in for external proposals (selective search, EdgeBoxes) where none are
    given: windows of each scale and ratio centred on a `stride` grid, as the RPN anchors.
    """
    height, width = int(image_shape[0]), int(image_shape[1])
    cells = (max(1, -(-height // stride)), max(1, -(-width // stride)))
    return clip_boxes(rpn_anchors(cells, stride, scales, aspect_ratios), (height, width))


def gt_from_batch(x, y):
    """`(boxes (B, N, 4) float32, classes (B, N) int32, valid (B, N) bool)` from a batch.

    Ground truth comes from `y` when it is a dict with `boxes` and `classes` (a loader's
    `(images, targets)` tuples), else from the batch dict `x`. Padding (class < 0) and
    degenerate boxes are invalid.
    """
    source = y if isinstance(y, dict) and "boxes" in y else x
    if not isinstance(source, dict) or "boxes" not in source or "classes" not in source:
        raise ValueError(
            "Training a detector needs ground truth: a batch dict with `boxes` (batch, N, 4) "
            "xyxy and `classes` (batch, N), -1 for padding. Received: "
            f"x={type(x).__name__}, y={type(y).__name__}")
    boxes = ops.cast(source["boxes"], "float32")
    classes = ops.cast(source["classes"], "int32")
    valid = ops.logical_and(classes >= 0, ops.logical_and(boxes[..., 2] > boxes[..., 0],
                                                          boxes[..., 3] > boxes[..., 1]))
    return boxes, classes, valid


def images_from_batch(inputs, key="images"):
    """The image tensor of a batch dict, or `inputs` itself."""
    return inputs[key] if isinstance(inputs, dict) else inputs


def generate_proposals(objectness_logits, deltas, anchors, image_shape, pre_nms_top_k,
                       post_nms_top_k, nms_threshold=0.7, min_size=1e-3, coder=None):
    """The Faster R-CNN proposal layer (Ren et al. 2015, sec. 3.3; torchvision's
    `filter_proposals`).

    Decodes the RPN deltas on the anchors, clips to the image, drops boxes smaller than
    `min_size`, keeps the `pre_nms_top_k` highest objectness scores, runs NMS at
    `nms_threshold` and keeps the `post_nms_top_k` best.

    Args:
        objectness_logits: `(batch, num_anchors)`.
        deltas: `(batch, num_anchors, 4)`.
        anchors: `(num_anchors, 4)`.
        image_shape: `(height, width)`.
        coder: a `BoxCoder` (weights 1, 1, 1, 1 when None).

    Returns:
        `(proposals (batch, post_nms_top_k, 4), valid (batch, post_nms_top_k) bool)`, with
        no gradient (approximate joint training treats proposals as constants).
    """
    coder = coder or BoxCoder()
    objectness_logits = ops.stop_gradient(ops.cast(objectness_logits, "float32"))
    deltas = ops.stop_gradient(ops.cast(deltas, "float32"))
    boxes = clip_boxes(coder.decode(anchors[None], deltas), image_shape)
    scores = ops.sigmoid(objectness_logits)
    big = ops.logical_and(boxes[..., 2] - boxes[..., 0] >= min_size,
                          boxes[..., 3] - boxes[..., 1] >= min_size)
    scores = ops.where(big, scores, 0.0)
    kept = batched_nms(boxes, scores, None, iou_threshold=nms_threshold, score_threshold=0.0,
                       max_detections=post_nms_top_k, pre_nms_top_k=pre_nms_top_k)
    return kept["boxes"], ops.arange(post_nms_top_k)[None, :] < kept["num_detections"][:, None]


def sample_rois(proposals, proposal_valid, gt_boxes, gt_classes, gt_valid, sampler,
                matcher=None, bg_iou_low=0.1, coder=None, add_gt=True):
    """Picks a fixed number of RoIs per image and their training targets.

    Girshick, "Fast R-CNN" (2015, sec. 2.3): 128 RoIs per image (the `sampler`'s batch), up
    to 25% foreground (IoU >= 0.5 with a ground-truth box), the rest background with IoU in
    [0.1, 0.5). The ground-truth boxes join the candidates (as in torchvision and
    Detectron), so the head sees positives from the first step.

    Args:
        proposals: `(batch, P, 4)`; proposal_valid `(batch, P)` bool.
        gt_boxes, gt_classes, gt_valid: `(batch, N, 4)`, `(batch, N)` ids 0..C-1, bool.
        sampler: a `BalancedPositiveNegativeSampler`.
        matcher: a `Matcher`; `Matcher(0.5, 0.5)` (foreground at IoU >= 0.5) when None.
        bg_iou_low: background RoIs need at least this IoU (0.1 in Fast R-CNN; torchvision
            uses 0, every non-foreground RoI).
        coder: the box head's `BoxCoder` (weights 10, 10, 5, 5 when None).

    Returns:
        `(rois (batch, R, 4), labels (batch, R) int32, target_deltas (batch, R, 4))`, R the
        sampler's batch size; labels are 0 background, 1..C classes, -1 unused slot.
    """
    coder = coder or BoxCoder(weights=(10.0, 10.0, 5.0, 5.0))
    candidates, valid = ops.stop_gradient(ops.cast(proposals, "float32")), proposal_valid
    if add_gt:
        candidates = ops.concatenate([candidates, gt_boxes], axis=1)
        valid = ops.concatenate([valid, gt_valid], axis=1)
    iou = bounding_boxes.compute_iou(candidates, gt_boxes, bounding_box_format="xyxy")
    matched, labels = (matcher or Matcher(0.5, 0.5))(iou, gt_valid)
    best = ops.max(ops.where(gt_valid[:, None, :], iou, -1.0), axis=-1)
    labels = ops.where(ops.logical_and(labels == NEGATIVE, best < bg_iou_low), IGNORE, labels)
    labels = ops.where(valid, labels, IGNORE)
    positive, negative = sampler(labels)
    count = sampler.batch_size_per_image
    if candidates.shape[1] < count:
        pad = count - candidates.shape[1]
        candidates = ops.pad(candidates, ((0, 0), (0, pad), (0, 0)))
        matched = ops.pad(matched, ((0, 0), (0, pad)))
        positive = ops.pad(positive, ((0, 0), (0, pad)))
        negative = ops.pad(negative, ((0, 0), (0, pad)))
    # Sampled candidates first (positives, then negatives), then unused filler slots.
    key = ops.cast(positive, "float32") * 2.0 + ops.cast(negative, "float32")
    key = key - ops.arange(candidates.shape[1], dtype="float32")[None] / candidates.shape[1]
    _, order = ops.top_k(key, k=count)
    take = lambda t: ops.take_along_axis(t, order, axis=1)
    rois = ops.take_along_axis(candidates, order[..., None], axis=1)
    gt_index = take(matched)
    classes = ops.take_along_axis(gt_classes, gt_index, axis=1) + 1
    labels = ops.where(take(positive), classes, ops.where(take(negative), 0, -1))
    matched_boxes = ops.take_along_axis(gt_boxes, gt_index[..., None], axis=1)
    targets = coder.encode(rois, matched_boxes)
    targets = ops.where((labels > 0)[..., None], targets, 0.0)
    return ops.stop_gradient(rois), ops.cast(labels, "int32"), ops.stop_gradient(targets)


def detect(class_scores, box_deltas, rois, roi_valid, image_shape, coder=None,
           score_threshold=0.05, nms_threshold=0.5, max_detections=100, pre_nms_top_k=1000):
    """Per-class decode + NMS of a box head's outputs into the detection contract.

    Args:
        class_scores: `(batch, R, C + 1)` scores (probabilities), background at index 0.
        box_deltas: `(batch, R, C + 1, 4)` class-specific deltas, or None (boxes = RoIs).
        rois: `(batch, R, 4)`; roi_valid `(batch, R)` bool.
        image_shape: `(height, width)` to clip to.
        pre_nms_top_k: (RoI, class) pairs entering NMS per image; at most that many are
            kept, even when it is below `max_detections` (the rows are padded all the same).

    Returns:
        dict: `boxes (batch, max_detections, 4)` xyxy, `scores (batch, max_detections)`,
        `classes (batch, max_detections)` int32 in 0..C-1 (-1 padding),
        `num_detections (batch,)` int32.
    """
    coder = coder or BoxCoder(weights=(10.0, 10.0, 5.0, 5.0))
    num_rois, num_classes = class_scores.shape[1], class_scores.shape[2] - 1
    scores = ops.where(roi_valid[..., None], ops.cast(class_scores[:, :, 1:], "float32"), 0.0)
    # Every (RoI, class) pair is a candidate. Scores at or below the threshold rank last, so
    # the best `pre_nms_top_k` pairs are the ones `batched_nms` would rank first among all
    # of them; only their boxes are decoded (decoding is per pair, so they are the same).
    top_scores, roi, label = top_k_pairs(scores, int(pre_nms_top_k))
    boxes = ops.take_along_axis(ops.cast(rois, "float32"), roi[..., None], axis=1)
    if box_deltas is not None:
        pairs = ops.reshape(ops.cast(box_deltas[:, :, 1:], "float32"),
                            (-1, num_rois * num_classes, 4))
        deltas = ops.take_along_axis(pairs, (roi * num_classes + label)[..., None], axis=1)
        boxes = coder.decode(boxes, deltas)
    out = batched_nms(clip_boxes(boxes, image_shape), top_scores, label,
                      iou_threshold=nms_threshold, score_threshold=score_threshold,
                      max_detections=max_detections)
    out.pop("indices")
    return out


def matcher_from(value, default):
    """A `Matcher` from None (the default), a config dict, or a `Matcher`."""
    if value is None:
        return default
    return Matcher(**value) if isinstance(value, dict) else value


def coder_from(value, default):
    """A `BoxCoder` from None (the default), a config dict, or a `BoxCoder`."""
    if value is None:
        return default
    return BoxCoder(**value) if isinstance(value, dict) else value
