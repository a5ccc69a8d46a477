"""The detection run report: PR curves per class, a detection confusion matrix, and test
images with their detections drawn (OpenCV), next to the training curves.

Example:
    >>> matrix = detection_confusion_matrix(gt_boxes, gt_classes, boxes, scores, classes, 3)
    >>> matrix.shape  # (C + 1, C + 1); the last row and column are "background"
    (4, 4)
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from kerascv_suite.training.plots import _pyplot, plot_confusion_matrix, plot_curves


def _iou(a, b):
    """`(len(a), len(b))` IoU of xyxy boxes."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=-1)
    area = lambda x: np.prod(np.clip(x[:, 2:] - x[:, :2], 0, None), axis=-1)
    union = area(a)[:, None] + area(b)[None] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


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
        iou = _iou(det_b, gt_b)
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


def plot_pr_curves(coco_result, class_names, path, iou_index=0, title=None):
    """Precision-recall curve of each class at IoU 0.5 (`iou_index` 0 of COCO's .50:.95),
    all areas, 100 detections: COCOeval's interpolated precision at 101 recall points."""
    from kerascv_suite.metrics.detection import IOU_THRESHOLDS, RECALL_THRESHOLDS

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 5))
    ids = list(coco_result.category_ids)
    for k, name in enumerate(class_names):
        if k not in ids:
            continue
        precision = coco_result.precision[iou_index, :, ids.index(k), 0, -1]
        if np.all(precision < 0):
            continue  # no ground truth of this class
        ap = float(np.mean(precision[precision > -1]))
        ax.plot(RECALL_THRESHOLDS, np.clip(precision, 0, 1), label=f"{name} AP {ap:.3f}")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(title or f"PR curves (test, IoU {IOU_THRESHOLDS[iou_index]:.2f})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _colour(class_id):
    # Well-separated hues per class, fixed so every report colours a class the same way.
    hue = int(class_id * 47) % 180
    bgr = cv2.cvtColor(np.uint8([[[hue, 220, 230]]]), cv2.COLOR_HSV2BGR)[0, 0]
    return tuple(int(c) for c in bgr[::-1])


def plot_val_ap(history, path):
    """Validation AP, AP50 and AP75 per validated epoch (epochs without validation skipped)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for key in ("val_ap", "val_ap50", "val_ap75"):
        rows = [row for row in history if row.get(key) not in (None, "")]
        if rows:
            ax.plot([r["epoch"] for r in rows], [float(r[key]) for r in rows], marker="o",
                    label=key.removeprefix("val_"))
    ax.set_xlabel("epoch")
    ax.set_ylim(0, 1)
    ax.set_title("validation AP (COCO)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def draw_detections(image, boxes, scores, classes, class_names, gt_boxes=None,
                    score_threshold=0.25, scale=None):
    """`image` (RGB uint8) with its detections drawn as coloured, labelled boxes and the
    ground truth (if given) as thin white boxes; enlarged `scale` times for small images."""
    image = np.asarray(image, np.uint8)
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    scale = scale or max(1, int(math.ceil(256 / max(image.shape[:2]))))
    out = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    out = np.ascontiguousarray(out)
    for box in np.asarray(gt_boxes if gt_boxes is not None else [], np.float32).reshape(-1, 4):
        x1, y1, x2, y2 = (box * scale).round().astype(int)
        cv2.rectangle(out, (x1, y1), (x2, y2), (255, 255, 255), 1)
    for box, score, cls in zip(np.asarray(boxes).reshape(-1, 4), np.asarray(scores).ravel(),
                               np.asarray(classes).ravel()):
        if cls < 0 or score < score_threshold:
            continue
        x1, y1, x2, y2 = (box * scale).round().astype(int)
        colour = _colour(int(cls))
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, 2)
        label = f"{class_names[int(cls)]} {score:.2f}"
        (w, h), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)
        top = max(y1 - h - 4, 0)
        cv2.rectangle(out, (x1, top), (x1 + w + 2, top + h + 4), colour, -1)
        cv2.putText(out, label, (x1 + 1, top + h + 1), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                    (0, 0, 0), 1, cv2.LINE_AA)
    return out


def sample_grid(panels, columns=4, gap=4):
    """Equal-size RGB panels tiled into one image, row by row."""
    if not panels:
        raise ValueError("sample_grid needs at least one panel. Received: panels=[]")
    height, width = panels[0].shape[:2]
    columns = min(columns, len(panels))
    rows = math.ceil(len(panels) / columns)
    grid = np.full((rows * (height + gap) - gap, columns * (width + gap) - gap, 3), 255,
                   np.uint8)
    for i, panel in enumerate(panels):
        r, c = divmod(i, columns)
        grid[r * (height + gap):r * (height + gap) + height,
             c * (width + gap):c * (width + gap) + width] = panel
    return grid


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
