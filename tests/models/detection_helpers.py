"""What the YOLO v1 and SSD model tests share: a synthetic batch and contract checks."""

import os
import tempfile

import keras
import numpy as np

from kerascv_suite.losses import pack_detection_targets

CONTRACT_KEYS = {"boxes", "scores", "classes", "num_detections"}


def synthetic_targets(batch, size, num_classes, seed=0):
    """Two boxes per image and one padding row, packed as the losses take them."""
    rng = np.random.default_rng(seed)
    lo = rng.uniform(0, size / 2, (batch, 2, 2))
    hi = lo + rng.uniform(size / 8, size / 2, (batch, 2, 2))
    boxes = np.concatenate([lo, hi], -1)
    boxes = np.concatenate([boxes, np.zeros((batch, 1, 4))], 1).astype("float32")
    classes = np.concatenate([rng.integers(0, num_classes, (batch, 2)),
                              -np.ones((batch, 1))], 1).astype("int32")
    return np.asarray(pack_detection_targets(boxes, classes))


def check_inference_contract(detector, images, num_classes, max_detections):
    out = detector.predict(images, verbose=0)
    assert set(out) == CONTRACT_KEYS
    batch, size = images.shape[0], images.shape[1]
    assert out["boxes"].shape == (batch, max_detections, 4)
    assert out["scores"].shape == (batch, max_detections)
    assert out["classes"].shape == (batch, max_detections)
    assert out["num_detections"].shape == (batch,)
    assert np.all((out["boxes"] >= 0) & (out["boxes"] <= size))
    for b, n in enumerate(out["num_detections"]):
        assert 0 <= n <= max_detections
        assert np.all((out["classes"][b, :n] >= 0) & (out["classes"][b, :n] < num_classes))
        assert np.all(out["classes"][b, n:] == -1)
        assert np.all(np.diff(out["scores"][b, :n]) <= 1e-6)  # best first
    return out


def keras_round_trip(model, images):
    expected = model.predict(images, verbose=0)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        model.save(path)
        restored = keras.saving.load_model(path)
    actual = restored.predict(images, verbose=0)
    for a, e in zip(keras.tree.flatten(actual), keras.tree.flatten(expected)):
        np.testing.assert_allclose(a, e, atol=1e-4, rtol=1e-4)
    return restored
