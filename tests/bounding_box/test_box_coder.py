"""BoxCoder: hand-computed deltas, round trips, SSD variances and the dw/dh clamp."""

import math

import numpy as np
import pytest
from keras import ops

from kerascv_suite.bounding_box import BoxCoder

pytestmark = pytest.mark.backend


def test_encode_hand_computed_faster_rcnn_weights():
    anchors = np.array([[0, 0, 10, 20]], "float32")  # centre (5, 10), size (10, 20)
    boxes = np.array([[2, 4, 22, 24]], "float32")  # centre (12, 14), size (20, 20)
    deltas = ops.convert_to_numpy(BoxCoder((10, 10, 5, 5)).encode(anchors, boxes))
    # dx = 10 * 7/10, dy = 10 * 4/20, dw = 5 log(20/10), dh = 5 log(20/20) (Ren et al. eq. 2).
    np.testing.assert_allclose(deltas, [[7.0, 2.0, 5 * math.log(2), 0.0]], rtol=1e-5, atol=1e-5)


def test_round_trip_rpn_head_and_ssd_variances():
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 200, (2, 50, 2))
    anchors = np.concatenate([xy[0], xy[0] + rng.uniform(8, 100, (50, 2))], -1).astype("float32")
    boxes = np.concatenate([xy[1], xy[1] + rng.uniform(8, 100, (50, 2))], -1).astype("float32")
    batched = np.stack([boxes, boxes[::-1]])  # (batch, num_anchors, 4) against (num_anchors, 4)
    for coder in (BoxCoder(), BoxCoder((10, 10, 5, 5)), BoxCoder.from_variances()):
        decoded = coder.decode(anchors, coder.encode(anchors, batched))
        np.testing.assert_allclose(ops.convert_to_numpy(decoded), batched, rtol=1e-4, atol=1e-3)


def test_ssd_variances_scale_deltas():
    anchors = np.array([[0, 0, 10, 10]], "float32")
    boxes = np.array([[1, 0, 11, 10]], "float32")
    # SSD (Liu et al. reference code): deltas divided by variances (.1, .1, .2, .2):
    # dx = (1/10) / .1 = 1.
    deltas = ops.convert_to_numpy(BoxCoder.from_variances((0.1, 0.1, 0.2, 0.2)).encode(anchors,
                                                                                        boxes))
    np.testing.assert_allclose(deltas, [[1.0, 0.0, 0.0, 0.0]], atol=1e-5)


def test_decode_clamps_width_and_height_deltas():
    anchors = np.array([[0, 0, 16, 16]], "float32")
    coder = BoxCoder((1, 1, 1, 1))
    decoded = ops.convert_to_numpy(coder.decode(anchors, np.array([[0, 0, 50.0, 50.0]],
                                                                  "float32")))
    # exp(clamp) = 1000/16 times the anchor: a 1000 px box centred on (8, 8).
    np.testing.assert_allclose(decoded, [[8 - 500, 8 - 500, 8 + 500, 8 + 500]], rtol=1e-4)


def test_rejects_bad_weights():
    with pytest.raises(ValueError, match="weights"):
        BoxCoder((1, 1, 0, 1))
