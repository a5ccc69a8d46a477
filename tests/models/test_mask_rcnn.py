"""Mask R-CNN: the mask head's shapes and parameters, its targets, loss and pasted masks."""

import keras
import numpy as np
import pytest

from kerascv_suite.data import make_shapes
from kerascv_suite.losses.mask_losses import mask_rcnn_loss
from kerascv_suite.models import build, get_spec
from kerascv_suite.models.detection.mask_head import (MaskHead, mask_head_params,
                                                      mask_targets, paste_masks)

from tests.models.detection_helpers import check_inference_contract, keras_round_trip


def test_mask_head_shapes_and_parameters_of_the_paper():
    # He et al. 2017, Fig. 4 (right): 14x14 RoIAlign -> 4 x (3x3 conv 256) -> 2x2 deconv
    # stride 2 -> 1x1 conv to 28x28xK. Hand count (mask_head.py docstring), K = 20:
    # VGG16 (512 channels) 1,179,904 + 3 * 590,080 + 262,400 + 5,140 = 3,217,684;
    # ResNet-50 C4 (1024 channels) 2,359,552 + 1,770,240 + 262,400 + 5,140 = 4,397,332.
    for channels, expected in ((512, 3_217_684), (1024, 4_397_332)):
        head = MaskHead(20, name="mask_head")
        head.build([(None, 38, 63, channels), (None, None, 4)])
        assert head.count_params() == expected == mask_head_params(channels, 20)
        assert head.compute_output_shape([(2, 38, 63, channels), (2, 100, 4)]) == (
            2, 100, 28, 28, 20)
    assert {l.name for l in head.convs} == {"mask_fcn1", "mask_fcn2", "mask_fcn3", "mask_fcn4"}
    head = MaskHead(3, pool_size=14, channels=4, num_convs=1)
    out = head([np.ones((1, 8, 8, 5), "float32"), np.array([[[0, 0, 64, 64]]], "float32")])
    assert tuple(out.shape) == (1, 1, 28, 28, 3)
    # The registered paper variants add exactly the head to the Faster R-CNN counts.
    assert get_spec("mask_rcnn").num_params == get_spec("faster_rcnn").num_params + 3_217_684
    assert get_spec("mask_rcnn_resnet50").num_params == (
        get_spec("faster_rcnn_resnet50").num_params + 4_397_332)


def test_mask_targets_pasted_back_recover_the_instances():
    sample = make_shapes(2, 96, seed=3)[1]
    masks, boxes = sample["instance_masks"][None], sample["boxes"][None]
    valid = np.ones(boxes.shape[:2], bool)
    # RoIs in another order than the boxes: each gets its own best-IoU instance's mask.
    rois = boxes[:, ::-1]
    targets = keras.ops.convert_to_numpy(mask_targets(masks, boxes, valid, rois))
    assert targets.shape == (1, len(boxes[0]), 28, 28)
    pasted = keras.ops.convert_to_numpy(paste_masks(targets, rois, (96, 96)))[0]
    for k, mask in enumerate(masks[0][::-1]):
        found = pasted[k] >= 0.5
        iou = (found & (mask > 0)).sum() / (found | (mask > 0)).sum()
        assert iou > 0.9, (k, iou)
        x1, y1, x2, y2 = rois[0, k]
        outside = np.ones((96, 96), bool)
        outside[int(np.ceil(y1)):int(y2), int(np.ceil(x1)):int(x2)] = False
        assert pasted[k][outside].max() == 0.0  # nothing outside the box


def test_mask_loss_is_the_gt_class_bce_over_positive_rois_only():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(1, 3, 2, 2, 4)).astype("float32")
    targets = rng.integers(0, 2, (1, 3, 2, 2)).astype("float32")
    labels = np.array([[2, 0, -1]])  # one positive of class 1 (label 2), bg, unsampled

    def bce(z, t):
        return np.mean(np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z))))

    loss = float(mask_rcnn_loss(logits, labels, targets))
    np.testing.assert_allclose(loss, bce(logits[0, 0, ..., 1], targets[0, 0]), rtol=1e-5)
    other = logits.copy()
    other[0, 0, ..., [0, 2, 3]] += 5.0  # other classes' masks of the positive
    other[0, 1:] -= 3.0  # background and unsampled RoIs
    np.testing.assert_allclose(float(mask_rcnn_loss(other, labels, targets)), loss, rtol=1e-6)
    assert float(mask_rcnn_loss(logits, np.array([[0, 0, -1]]), targets)) == 0.0


@pytest.mark.backend
def test_mask_rcnn_trains_and_returns_pasted_masks():
    spec = get_spec("mask_rcnn_small")
    model = build("mask_rcnn_small", **spec.test_overrides)
    size = model.image_shape[0]
    sample = make_shapes(1, size, seed=1)[0]
    n = len(sample["boxes"])
    assert n > 0
    batch = {"images": sample["image"][None].astype("float32"),
             "boxes": np.zeros((1, 4, 4), "float32"), "classes": -np.ones((1, 4), "int32"),
             "instance_masks": np.zeros((1, 4, size, size), "uint8")}
    batch["boxes"][0, :n], batch["classes"][0, :n] = sample["boxes"], sample["classes"]
    batch["instance_masks"][0, :n] = sample["instance_masks"]
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    before = keras.ops.convert_to_numpy(model.mask_head.predictor.kernel).copy()
    history = model.fit(batch, batch_size=1, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][-1])
    after = keras.ops.convert_to_numpy(model.mask_head.predictor.kernel)
    assert not np.array_equal(before, after)  # the mask loss reaches the mask head
    images = np.repeat(batch["images"], 2, axis=0)
    out = keras.tree.map_structure(keras.ops.convert_to_numpy,
                                   model(images, score_threshold=0.0))
    detections = {k: v for k, v in out.items() if k != "masks"}
    assert out["masks"].shape == (2, model.max_detections, size, size)
    assert out["masks"].dtype == np.float32
    assert 0.0 <= out["masks"].min() and out["masks"].max() <= 1.0
    for b, count in enumerate(detections["num_detections"]):
        assert np.all(out["masks"][b, count:] == 0.0)  # padding rows
    assert detections["num_detections"].min() > 0
    check_inference_contract(_ContractOnly(model), images, 3, model.max_detections)
    keras_round_trip(model, images)


class _ContractOnly:
    """The model's contract outputs, as `check_inference_contract` expects them."""

    def __init__(self, model):
        self.model = model

    def predict(self, images, verbose=0):
        out = self.model.predict(images, verbose=verbose)
        assert set(out) == {"boxes", "scores", "classes", "num_detections", "masks"}
        return {k: v for k, v in out.items() if k != "masks"}
