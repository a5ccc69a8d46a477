"""`elementwise_iou`: hand-computed values and the diagonal of Keras' pairwise table."""

import numpy as np
import pytest
from keras import ops
from keras.utils.bounding_boxes import compute_iou

from kerascv_suite.bounding_box import elementwise_iou

pytestmark = pytest.mark.backend


def test_elementwise_iou_hand_computed_xyxy():
    boxes1 = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 2, 2]], "float32")
    boxes2 = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [3, 3, 4, 4]], "float32")
    iou = ops.convert_to_numpy(elementwise_iou(boxes1, boxes2, "xyxy"))
    # Identical: 1. Half shifted: overlap 5 x 10 = 50, union 100 + 100 - 50 = 150.
    # Disjoint: 0.
    np.testing.assert_allclose(iou, [1.0, 50 / 150, 0.0], rtol=1e-6)


def test_elementwise_iou_broadcasts_center_xywh():
    # One target per cell against B = 2 predictions: (1, 2, 2, 4) against (1, 2, 1, 4).
    preds = np.array([[[[5, 5, 10, 10], [5, 5, 2, 2]],
                       [[1, 1, 2, 2], [2, 1, 2, 2]]]], "float32")
    targets = np.array([[[[5, 5, 10, 10]], [[1, 1, 2, 2]]]], "float32")
    iou = ops.convert_to_numpy(elementwise_iou(preds, targets, "center_xywh"))
    assert iou.shape == (1, 2, 2)
    # A 2 x 2 box inside a 10 x 10 one: 4 / 100. Unit shift of a 2 x 2 box: 2 / (8 - 2).
    np.testing.assert_allclose(iou, [[[1.0, 0.04], [1.0, 2 / 6]]], rtol=1e-6)


def test_elementwise_iou_is_the_diagonal_of_compute_iou():
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 50, (2, 7, 2))
    boxes1 = np.concatenate([xy, xy + rng.uniform(1, 30, (2, 7, 2))], -1).astype("float32")
    xy = rng.uniform(0, 50, (2, 7, 2))
    boxes2 = np.concatenate([xy, xy + rng.uniform(1, 30, (2, 7, 2))], -1).astype("float32")
    table = ops.convert_to_numpy(compute_iou(boxes1, boxes2, bounding_box_format="xyxy"))
    diagonal = np.diagonal(table, axis1=1, axis2=2)
    assert diagonal.max() > 0  # the random boxes overlap somewhere
    np.testing.assert_allclose(ops.convert_to_numpy(elementwise_iou(boxes1, boxes2, "xyxy")),
                               diagonal, rtol=1e-6)
