"""The detection confusion matrix on `compute_iou` equals the one the report computed with
its former numpy IoU (kept here as the reference)."""

import numpy as np
import pytest

from kerascv_suite.training.detection_report import detection_confusion_matrix


def _numpy_iou(a, b):
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=-1)
    area = lambda x: np.prod(np.clip(x[:, 2:] - x[:, :2], 0, None), axis=-1)  # noqa: E731
    union = area(a)[:, None] + area(b)[None] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def _reference_matrix(gt_boxes, gt_classes, boxes, scores, classes, num_classes,
                      iou_threshold=0.5, score_threshold=0.25):
    matrix = np.zeros((num_classes + 1, num_classes + 1), np.int64)
    for gt_b, gt_c, det_b, det_s, det_c in zip(gt_boxes, gt_classes, boxes, scores, classes):
        keep = det_s >= score_threshold
        det_b, det_c = det_b[keep], det_c[keep]
        order = np.argsort(-det_s[keep], kind="stable")
        iou = _numpy_iou(det_b, gt_b)
        taken = np.zeros(len(gt_c), bool)
        for d in order:
            candidates = np.where(taken, -1.0, iou[d]) if len(gt_c) else np.zeros(0)
            g = int(np.argmax(candidates)) if len(candidates) else -1
            if g >= 0 and candidates[g] >= iou_threshold:
                taken[g] = True
                matrix[gt_c[g], det_c[d]] += 1
            else:
                matrix[num_classes, det_c[d]] += 1
        for g in np.flatnonzero(~taken):
            matrix[gt_c[g], num_classes] += 1
    return matrix


def _boxes(rng, n):
    xy = rng.integers(0, 40, size=(n, 2))
    return np.concatenate([xy, xy + rng.integers(1, 20, size=(n, 2))], axis=1).astype(float)


@pytest.mark.parametrize("seed", range(5))
def test_matrix_equals_the_numpy_iou_version(seed):
    rng = np.random.default_rng(seed)
    gt_boxes, gt_classes, boxes, scores, classes = [], [], [], [], []
    for image in range(12):
        num_gt, num_det = (0, 3) if image == 0 else (2, 0) if image == 1 else \
            rng.integers(1, 6, size=2)
        gt = _boxes(rng, num_gt)
        # Detections near the ground truth (jittered) and some anywhere.
        near = gt[rng.integers(0, max(num_gt, 1), size=num_det)] if num_gt else _boxes(rng, num_det)
        det = np.where(rng.random((num_det, 1)) < 0.7, near + rng.normal(0, 2, (num_det, 4)),
                       _boxes(rng, num_det))
        gt_boxes.append(gt)
        gt_classes.append(rng.integers(0, 3, size=num_gt))
        boxes.append(det)
        scores.append(rng.random(num_det))
        classes.append(rng.integers(0, 3, size=num_det))
    args = gt_boxes, gt_classes, boxes, scores, classes, 3
    expected = _reference_matrix(*args)
    np.testing.assert_array_equal(detection_confusion_matrix(*args), expected)
    assert expected[:3, :3].sum() > 0  # some detections did match
    np.testing.assert_array_equal(detection_confusion_matrix(*args, iou_threshold=0.3),
                                  _reference_matrix(*args, iou_threshold=0.3))
