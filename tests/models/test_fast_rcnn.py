"""Fast R-CNN: external proposals, RoI pooling / SPP, multi-task loss, contract, .keras."""

import numpy as np
import pytest
from keras import ops

from kerascv_suite import models
from kerascv_suite.losses import fast_rcnn_loss
from kerascv_suite.models.detection import FastRCNN
from tests.models.test_faster_rcnn import check_detections, synthetic_batch, train_and_roundtrip


def proposals(batch_size=2, count=12, seed=3):
    rng = np.random.default_rng(seed)
    boxes = rng.uniform(0, 40, (batch_size, count, 4)).astype("float32")
    boxes[..., 2:] = boxes[..., :2] + rng.uniform(5, 24, (batch_size, count, 2))
    boxes[:, -2:] = 0.0  # padding rows
    return boxes


@pytest.mark.backend
@pytest.mark.parametrize("pooling", ["roi_pool", "spp"])
def test_fast_rcnn_trains_with_external_proposals(pooling, tmp_path):
    spec = models.get_spec("fast_rcnn")
    model = spec.build(**{**spec.test_overrides, "pooling": pooling})
    assert isinstance(model, FastRCNN)
    batch = {**synthetic_batch(), "proposals": proposals()}
    inputs = {"images": batch["images"], "proposals": batch["proposals"]}
    out = train_and_roundtrip(model, batch, tmp_path, predict_input=inputs)
    check_detections(out, 2, 10, 3, 64)
    # Bare images fall back to the sliding-window proposals.
    check_detections(model.predict(batch["images"], verbose=0), 2, 10, 3, 64)


@pytest.mark.backend
def test_fast_rcnn_loss_hand_values():
    # Girshick 2015 eq. 1, lambda = 1. RoI 0: class 1, logits (0, 0) -> CE ln 2, deltas off
    # by (0.5, 0, 0, 2) -> smooth L1 0.125 + 1.5 = 1.625. RoI 1: background, CE ln 2, no box
    # term. RoI 2: unsampled (-1), ignored. Both terms average over the 2 sampled RoIs.
    logits = np.zeros((1, 3, 2), "float32")
    deltas = np.zeros((1, 3, 2, 4), "float32")
    labels = np.array([[1, 0, -1]], "int32")
    targets = np.zeros((1, 3, 4), "float32")
    targets[0, 0] = [0.5, 0.0, 0.0, 2.0]
    deltas[0, 0, 0] = [9.0, 9.0, 9.0, 9.0]  # background's deltas never count
    cls_loss, box_loss = fast_rcnn_loss(logits, deltas, labels, targets)
    np.testing.assert_allclose(float(ops.convert_to_numpy(cls_loss)), np.log(2.0), rtol=1e-6)
    np.testing.assert_allclose(float(ops.convert_to_numpy(box_loss)), 1.625 / 2, rtol=1e-6)
