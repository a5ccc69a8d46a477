"""The detection run report: PR curves per class, a detection confusion matrix, and test
images with their detections drawn, next to the training curves (the drawing and plots are
`kerascv_suite.visualization`'s).

Example:
    >>> matrix = detection_confusion_matrix(gt_boxes, gt_classes, boxes, scores, classes, 3)
    >>> matrix.shape  # (C + 1, C + 1); the last row and column are "background"
    (4, 4)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from keras import ops

from kerascv_suite.bounding_box import compute_iou
from kerascv_suite.visualization import (draw_detections, plot_confusion_matrix,
                                         plot_curves, plot_pr_curves, plot_val_ap, sample_grid)


def _pairwise_iou(boxes1, boxes2):
    """`(len(boxes1), len(boxes2))` float64 IoU of xyxy boxes (`compute_iou`; an empty side
    gives an empty table without a backend call)."""
    boxes1 = np.asarray(boxes1, np.float32).reshape(-1, 4)
    boxes2 = np.asarray(boxes2, np.float32).reshape(-1, 4)
    if not len(boxes1) or not len(boxes2):
        return np.zeros((len(boxes1), len(boxes2)))
    iou = compute_iou(boxes1, boxes2, bounding_box_format="xyxy")
    return np.asarray(ops.convert_to_numpy(iou), np.float64)


def detection_confusion_matrix(gt_boxes, gt_classes, boxes, scores, classes, num_classes,
                               iou_threshold=0.5, score_threshold=0.25) -> np.ndarray:
    """Counts of (true class, predicted class) over detections matched to ground truth.

    Per image, detections scoring at least `score_threshold` are taken best first; each takes
    the unmatched ground-truth box of highest IoU >= `iou_threshold`, whatever its class
    (so a circle detected as a square counts in row circle, column square). Unmatched
    detections count in the background row (false positives), unmatched ground truth in the
    background column (misses). The same layout as ultralytics' detection confusion matrix
    (which uses score 0.25 and IoU 0.45).

    Args:
        gt_boxes, gt_classes: per image, `(num_gt, 4)` xyxy and `(num_gt,)` ids (no padding).
        boxes, scores, classes: per image, `(num_det, 4)`, `(num_det,)`, `(num_det,)`.
        num_classes: C.

    Returns:
        `(C + 1, C + 1)` int64: rows true classes then background, columns predicted
        classes then background.
    """
    matrix = np.zeros((num_classes + 1, num_classes + 1), np.int64)
    background = num_classes
    for gt_b, gt_c, det_b, det_s, det_c in zip(gt_boxes, gt_classes, boxes, scores, classes):
        gt_c = np.asarray(gt_c, int).reshape(-1)
        keep = np.asarray(det_s).reshape(-1) >= score_threshold
        det_b = np.asarray(det_b).reshape(-1, 4)[keep]
        det_c = np.asarray(det_c, int).reshape(-1)[keep]
        order = np.argsort(-np.asarray(det_s).reshape(-1)[keep], kind="stable")
        iou = _pairwise_iou(det_b, gt_b)
        taken = np.zeros(len(gt_c), bool)
        for d in order:
            candidates = np.where(taken, -1.0, iou[d]) if len(gt_c) else np.zeros(0)
            g = int(np.argmax(candidates)) if len(candidates) else -1
            if g >= 0 and candidates[g] >= iou_threshold:
                taken[g] = True
                matrix[gt_c[g], det_c[d]] += 1
            else:
                matrix[background, det_c[d]] += 1
        for g in np.flatnonzero(~taken):
            matrix[gt_c[g], background] += 1
    return matrix


def write_detection_report(folder, *, history, coco_result, predictions, class_names,
                           score_threshold=0.25):
    """Writes `curves.png`, `val_ap.png`, `pr_curves.png`, `confusion.png` and `samples.png`
    (the kept test images with detections) into `folder`; returns the paths written.

    `predictions` is a `train_detector.Predictions` (per-image ground truth, detections and
    the first images).
    """
    from kerascv_suite.data import write_image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    if history:
        plot_curves(history, folder / "curves.png")
        paths.append(folder / "curves.png")
    if any("val_ap50" in row for row in history or ()):
        plot_val_ap(history, folder / "val_ap.png")
        paths.append(folder / "val_ap.png")
    plot_pr_curves(coco_result, class_names, folder / "pr_curves.png")
    paths.append(folder / "pr_curves.png")
    p = predictions
    matrix = detection_confusion_matrix(p.gt_boxes, p.gt_classes, p.boxes, p.scores,
                                        p.classes, len(class_names),
                                        score_threshold=score_threshold)
    plot_confusion_matrix(matrix, [*class_names, "background"], folder / "confusion.png",
                          title=f"detections (test, IoU 0.5, score {score_threshold})")
    paths.append(folder / "confusion.png")
    if p.images:
        panels = [draw_detections(image, p.boxes[i], p.scores[i], p.classes[i], class_names,
                                  gt_boxes=p.gt_boxes[i], score_threshold=score_threshold)
                  for i, image in enumerate(p.images)]
        write_image(folder / "samples.png", sample_grid(panels))
        paths.append(folder / "samples.png")
    return paths
