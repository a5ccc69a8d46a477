"""Faster R-CNN: parts, one training step with the real loss, inference contract, .keras."""

import os

import keras
import numpy as np
import pytest
from keras import ops

from kerascv_suite import models
from kerascv_suite.bounding_box import BalancedPositiveNegativeSampler, rpn_anchors
from kerascv_suite.losses import rpn_loss, smooth_l1
from kerascv_suite.models.detection import FasterRCNN
from kerascv_suite.models.detection.proposals import generate_proposals, sample_rois
from kerascv_suite.models.detection.rpn import rpn_targets


def synthetic_batch():
    """Two 64x64 images, up to 3 boxes each (class -1 pads)."""
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    boxes = np.zeros((2, 3, 4), "float32")
    classes = -np.ones((2, 3), "int32")
    boxes[0, 0], classes[0, 0] = [5, 5, 30, 40], 1
    boxes[1, :2], classes[1, :2] = [[10, 10, 50, 50], [0, 0, 20, 20]], [0, 2]
    return {"images": images, "boxes": boxes, "classes": classes}


def check_detections(out, batch, max_detections, num_classes, size):
    assert out["boxes"].shape == (batch, max_detections, 4)
    assert out["scores"].shape == (batch, max_detections)
    assert out["classes"].shape == (batch, max_detections)
    assert out["num_detections"].shape == (batch,)
    boxes, classes = np.asarray(out["boxes"]), np.asarray(out["classes"])
    assert np.all((boxes >= 0) & (boxes <= size))
    assert np.all((classes >= -1) & (classes < num_classes))
    for i, n in enumerate(np.asarray(out["num_detections"])):
        assert np.all(classes[i, n:] == -1) and np.all(classes[i, :n] >= 0)


def train_and_roundtrip(model, batch, tmp_path, predict_input=None):
    before = [np.array(w) for w in model.get_weights()]
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    history = model.fit(batch, batch_size=2, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0]) and history.history["loss"][0] > 0
    after = model.get_weights()
    assert any(not np.array_equal(b, a) for b, a in zip(before, after))
    x = batch["images"] if predict_input is None else predict_input
    out = model.predict(x, verbose=0)
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    again = restored.predict(x, verbose=0)
    for key in out:
        np.testing.assert_allclose(again[key], out[key], atol=1e-5)
    return out


@pytest.mark.backend
def test_faster_rcnn_trains_predicts_and_round_trips(tmp_path):
    spec = models.get_spec("faster_rcnn")
    model = spec.build(**spec.test_overrides)
    assert isinstance(model, FasterRCNN)
    batch = synthetic_batch()
    out = train_and_roundtrip(model, batch, tmp_path)
    check_detections(out, 2, 10, 3, 64)


def test_faster_rcnn_targets_from_tuples_and_evaluate():
    # The loader's other layout, (images, {"boxes", "classes"}), and evaluate(), whose
    # forward pass returns detections, so compute_loss reruns the raw forward pass.
    spec = models.get_spec("faster_rcnn")
    model = spec.build(**spec.test_overrides)
    batch = synthetic_batch()
    model.compile(optimizer="sgd")
    loss = model.fit(batch["images"], {"boxes": batch["boxes"], "classes": batch["classes"]},
                     batch_size=2, verbose=0).history["loss"][0]
    assert np.isfinite(loss)
    assert np.isfinite(model.evaluate(batch, verbose=0))
    with pytest.raises(ValueError, match="needs ground truth"):
        model.fit(batch["images"], np.zeros((2, 1), "float32"), verbose=0)


@pytest.mark.backend
def test_faster_rcnn_roi_align_option():
    spec = models.get_spec("faster_rcnn")
    model = spec.build(**{**spec.test_overrides, "pooling": "roi_align"})
    model.compile(optimizer="sgd")
    assert np.isfinite(model.fit(synthetic_batch(), batch_size=2, verbose=0).history["loss"][0])


@pytest.mark.backend
def test_proposals_are_clipped_ranked_and_suppressed():
    anchors = rpn_anchors((4, 4), 16, (16, 32, 64))
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(2, 144)).astype("float32")
    deltas = rng.normal(scale=0.2, size=(2, 144, 4)).astype("float32")
    boxes, valid = generate_proposals(logits, deltas, anchors, (64, 64), pre_nms_top_k=100,
                                      post_nms_top_k=20, nms_threshold=0.7)
    boxes, valid = ops.convert_to_numpy(boxes), ops.convert_to_numpy(valid)
    assert boxes.shape == (2, 20, 4) and np.all((boxes >= 0) & (boxes <= 64))
    iou = ops.convert_to_numpy(keras.utils.bounding_boxes.compute_iou(
        boxes, boxes, bounding_box_format="xyxy"))
    for b in range(2):
        kept = np.flatnonzero(valid[b])
        sub = iou[b][np.ix_(kept, kept)] - np.eye(len(kept)) * 2
        assert sub.max() <= 0.7 + 1e-6  # paper sec. 3.3: NMS at IoU 0.7


@pytest.mark.backend
def test_rpn_targets_follow_paper_sampling():
    # Ren et al. 2015 sec. 3.1.3: 256 anchors per image, up to 1:1 positives:negatives.
    anchors = rpn_anchors((8, 8), 16, (32, 64, 128))
    gt = np.array([[[10, 10, 60, 70], [0, 0, 0, 0]]], "float32")
    valid = np.array([[True, False]])
    sampler = BalancedPositiveNegativeSampler(256, 0.5, seed=0)
    positive, negative, targets = rpn_targets(anchors, gt, valid, sampler=sampler)
    positive, negative = ops.convert_to_numpy(positive), ops.convert_to_numpy(negative)
    assert 1 <= positive.sum() <= 128 and positive.sum() + negative.sum() == 256
    assert not np.any(positive & negative)
    targets = ops.convert_to_numpy(targets)
    assert np.all(targets[~positive] == 0) and np.any(targets[positive] != 0)
    logits = np.zeros((1, anchors.shape[0]), "float32")
    cls_loss, box_loss = rpn_loss(logits, np.zeros_like(targets), targets, positive, negative)
    # Logit 0 -> BCE = ln 2 for every sampled anchor, whatever its label.
    np.testing.assert_allclose(float(cls_loss), np.log(2.0), rtol=1e-5)
    assert float(box_loss) > 0


@pytest.mark.backend
def test_smooth_l1_hand_values():
    # Girshick 2015 eq. 3: 0.5 x^2 if |x| < 1 else |x| - 0.5 -> 0.125, 0.5 (at 1), 1.5 (2).
    value = smooth_l1(np.zeros(3, "float32"), np.array([0.5, -1.0, 2.0], "float32"))
    np.testing.assert_allclose(ops.convert_to_numpy(value), [0.125, 0.5, 1.5], rtol=1e-6)


@pytest.mark.backend
def test_sample_rois_labels_by_iou_band():
    # gt 0..10 x 0..10. Proposals: IoU 0.6 (0..10 x 0..6) foreground; IoU 0.3 background;
    # IoU 0.05 (0..10 x 0..0.5) ignored (Fast R-CNN background band [0.1, 0.5)).
    gt = np.array([[[0, 0, 10, 10]]], "float32")
    props = np.array([[[0, 0, 10, 6], [0, 0, 10, 3], [0, 0, 10, 0.5]]], "float32")
    sampler = BalancedPositiveNegativeSampler(4, 0.5, seed=0)
    rois, labels, targets = sample_rois(props, np.ones((1, 3), bool), gt,
                                        np.array([[2]], "int32"), np.ones((1, 1), bool),
                                        sampler, add_gt=False)
    rois, labels = ops.convert_to_numpy(rois), ops.convert_to_numpy(labels)
    assert sorted(labels[0].tolist()) == [-1, -1, 0, 3]  # class 2 -> label 3 (0 = background)
    np.testing.assert_allclose(rois[0][labels[0] == 3][0], [0, 0, 10, 6])
    np.testing.assert_allclose(rois[0][labels[0] == 0][0], [0, 0, 10, 3])
