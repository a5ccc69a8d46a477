"""`Detector`: one adapter from any of the five detector families to the output contract."""

import numpy as np
import pytest

from kerascv_suite.models.detection.inference import (CONTRACT_KEYS, Detector,
                                                      detector_num_classes, is_detector)
from kerascv_suite.models.registry import build, get_spec

# The CPU-sized variant of each family, built from its registry smoke-test overrides.
FAMILIES = ("yolo_v1", "ssd300", "faster_rcnn_small", "fast_rcnn_small", "rcnn_small")


def _tiny(name):
    return build(name, **get_spec(name).test_overrides)


def _images(size, batch=2, seed=0):
    from kerascv_suite.data import make_shapes

    ds = make_shapes(batch, size, seed=seed)
    return np.stack([ds[i]["image"] for i in range(batch)])


# Not marked backend: it passes on jax and torch too, but jax compiles each family's
# post-processing for ~45 s on the 2-core CI machine (measured at load 9).
@pytest.mark.parametrize("name", FAMILIES)
def test_detector_adapter_contract(name):
    model = _tiny(name)
    assert is_detector(model)
    assert detector_num_classes(model) == 3
    # A zero score threshold keeps every candidate, so the batch is padded to capacity
    # only where NMS leaves fewer boxes; max_detections sets the padded size.
    detector = Detector(model, score_threshold=0.0, max_detections=4, max_proposals=20)
    height, width = detector.input_size
    assert detector.num_classes == 3
    assert detector.needs_proposals == (name in ("fast_rcnn_small", "rcnn_small"))
    images = _images((height, width))
    out = detector.predict(images)
    assert set(out) == set(CONTRACT_KEYS)
    assert out["boxes"].shape == (2, 4, 4)
    assert out["scores"].shape == out["classes"].shape == (2, 4)
    assert out["num_detections"].shape == (2,)
    for b, n in enumerate(out["num_detections"]):
        assert 0 <= n <= 4
        assert np.all((out["classes"][b, :n] >= 0) & (out["classes"][b, :n] < 3))
        assert np.all(out["classes"][b, n:] == -1)
        assert np.all(np.diff(out["scores"][b, :n]) <= 1e-6)  # best first
        boxes = out["boxes"][b, :n]
        assert np.all((boxes >= 0) & (boxes <= [width, height, width, height]))
    # A threshold no score reaches leaves only padding.
    strict = Detector(model, score_threshold=0.999999, max_detections=4, max_proposals=20)
    none = strict.predict(images)
    assert np.all(none["num_detections"] == 0) and np.all(none["classes"] == -1)


def test_is_detector_rejects_a_classifier():
    assert not is_detector(build("lenet5"))


# TensorFlow only: jax compiles the NMS loops for ~15 s on the 2-core CI machine;
# tests/bounding_box/test_nms.py checks the pieces on every backend.
def test_two_stage_detect_equals_decoding_every_pair():
    # `proposals.detect` ranks (RoI, class) pairs and decodes only the candidates' boxes;
    # the result must equal decoding every pair and ranking them all in NMS.
    from keras import ops

    from kerascv_suite.bounding_box import BoxCoder, batched_nms
    from kerascv_suite.models.detection import proposals as P

    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 100, (2, 120, 2))
    rois = np.concatenate([xy, xy + rng.uniform(8, 40, (2, 120, 2))], -1).astype("float32")
    valid = rng.uniform(size=(2, 120)) < 0.9
    logits = rng.normal(0, 2, (2, 120, 4)).astype("float32")
    scores = ops.convert_to_numpy(ops.softmax(logits, axis=-1))
    deltas = rng.normal(0, 1, (2, 120, 4, 4)).astype("float32")
    out = P.detect(scores, deltas, rois, valid, (128, 128), score_threshold=0.3,
                   nms_threshold=0.5, max_detections=30, pre_nms_top_k=100)
    out = {k: ops.convert_to_numpy(v) for k, v in out.items()}

    coder = BoxCoder(weights=(10.0, 10.0, 5.0, 5.0))
    boxes = P.clip_boxes(coder.decode(rois[:, :, None], deltas[:, :, 1:]), (128, 128))
    pair_scores = np.where(valid[..., None], scores[:, :, 1:], 0.0).reshape(2, -1)
    old = batched_nms(ops.reshape(boxes, (2, -1, 4)), pair_scores,
                      np.tile(np.arange(3, dtype="int32"), (2, 120)), iou_threshold=0.5,
                      score_threshold=0.3, max_detections=30, pre_nms_top_k=100)
    assert out["num_detections"].min() > 5
    for key in ("boxes", "scores", "classes", "num_detections"):
        np.testing.assert_allclose(out[key], ops.convert_to_numpy(old[key]), atol=1e-4)
