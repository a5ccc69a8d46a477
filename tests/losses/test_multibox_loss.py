import keras
import numpy as np
import pytest

from kerascv_suite.bounding_box import SSD300, ssd_default_boxes
from kerascv_suite.losses import MultiboxLoss, pack_detection_targets

# A small default-box set: a 2x2 map on a 10-pixel image, boxes 4x4 and 6x6 per cell
# (sqrt(4 * 9) = 6), 8 in all.
SMALL = {"image_size": 10, "feature_map_sizes": (2,), "steps": (5,), "min_sizes": (4.0,),
         "max_sizes": (9.0,), "aspect_ratios": ((),)}


def _iou(a, b):
    lo, hi = np.maximum(a[:2], b[:2]), np.minimum(a[2:], b[2:])
    inter = np.prod(np.clip(hi - lo, 0, None))
    return inter / (np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2]) - inter)


def _reference(anchors, boxes, classes, pred, variances=(0.1, 0.1, 0.2, 0.2), ratio=3):
    """The paper's loss, written loop by loop (sec. 2.2, "Matching strategy" and eq. 1-3)."""
    total, num_pos = 0.0, 0
    for b in range(len(boxes)):
        gts = [(box, c) for box, c in zip(boxes[b], classes[b]) if c >= 0]
        label = np.zeros(len(anchors), int)
        match = np.zeros(len(anchors), int)
        ious = np.array([[_iou(a, g) for g, _ in gts] for a in anchors]).reshape(len(anchors), -1)
        if gts:
            match = ious.argmax(1)
            label = (ious.max(1) >= 0.5).astype(int)
            for j in range(len(gts)):  # each ground truth keeps its best default box
                label[ious[:, j] == ious[:, j].max()] = 1
        logits = pred[b, :, 4:]
        log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        loss = 0.0
        for i in np.flatnonzero(label):
            a, g = anchors[i], gts[match[i]][0]
            aw, ah = a[2:] - a[:2]
            gw, gh = g[2:] - g[:2]
            t = np.array([((g[0] + g[2]) - (a[0] + a[2])) / 2 / aw / variances[0],
                          ((g[1] + g[3]) - (a[1] + a[3])) / 2 / ah / variances[1],
                          np.log(gw / aw) / variances[2], np.log(gh / ah) / variances[3]])
            d = np.abs(pred[b, i, :4] - t)
            loss += np.where(d < 1, 0.5 * d * d, d - 0.5).sum()
            loss -= log_p[i, gts[match[i]][1] + 1]
        negatives = np.flatnonzero(label == 0)
        hardest = negatives[np.argsort(log_p[negatives, 0])][: ratio * label.sum()]
        loss -= log_p[hardest, 0].sum()
        total += loss
        num_pos += label.sum()
    return total / max(num_pos, 1)


@pytest.mark.backend
def test_multibox_loss_matches_loop_reference():
    rng = np.random.default_rng(0)
    anchors = np.asarray(keras.ops.convert_to_numpy(ssd_default_boxes(**SMALL)))
    boxes = np.array([[[0.5, 0.5, 4.5, 4.0], [5, 4, 10, 10], [0, 0, 0, 0]],
                      [[2, 2, 8, 8], [0, 0, 0, 0], [0, 0, 0, 0]]], "float32")
    classes = np.array([[0, 2, -1], [1, -1, -1]], "int32")
    pred = rng.normal(size=(2, 8, 4 + 4)).astype("float32")
    loss = MultiboxLoss(SMALL, num_classes=3)
    value = keras.ops.convert_to_numpy(loss(pack_detection_targets(boxes, classes), pred))
    np.testing.assert_allclose(value, _reference(anchors, boxes, classes, pred), rtol=1e-5)


@pytest.mark.backend
def test_multibox_loss_hand_computed():
    # One box equal to default box 0 ((0.5, 0.5, 4.5, 4.5), the 4x4 box of cell (0, 0)); its
    # IoU with every other default box is < 0.5 (the 6x6 box of its cell: 16/36), so it is
    # the only positive. Offsets 0 are exact; zero logits over 2 classes + background cost
    # log 3 for the positive and for each of the 3 mined negatives (all tie).
    # L = (4 log 3 + 0) / 1.
    boxes = np.array([[[0.5, 0.5, 4.5, 4.5]]], "float32")
    classes = np.array([[1]], "int32")
    pred = np.zeros((1, 8, 4 + 3), "float32")
    loss = MultiboxLoss(SMALL, num_classes=2)
    value = keras.ops.convert_to_numpy(loss(pack_detection_targets(boxes, classes), pred))
    np.testing.assert_allclose(value, 4 * np.log(3.0), rtol=1e-6)


@pytest.mark.backend
def test_multibox_loss_no_objects_is_zero():
    # No positives: no negatives are mined either, and N = 0 gives 0 (Caffe's MultiBoxLoss).
    loss = MultiboxLoss(SMALL, num_classes=2)
    targets = pack_detection_targets(np.zeros((2, 1, 4), "float32"), -np.ones((2, 1), "int32"))
    value = keras.ops.convert_to_numpy(loss(targets, np.ones((2, 8, 7), "float32")))
    assert value == 0.0


def test_multibox_loss_config_round_trip():
    loss = MultiboxLoss(SSD300, num_classes=20)
    clone = MultiboxLoss.from_config(loss.get_config())
    assert clone.get_config() == loss.get_config()
    # SSD300's 8,732 default boxes (paper sec. 3.1, Table 7).
    assert clone.anchors().shape == (8732, 4)
