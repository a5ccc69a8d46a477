"""Segmentation losses against plain numpy references on random cases."""

import keras
import numpy as np
import pytest

from kerascv_suite.losses.segmentation import (SegmentationLoss, dice_loss, segmentation_loss,
                                               sparse_cross_entropy)


def _case(seed=0, shape=(2, 5, 6), num_classes=4, ignore_fraction=0.2):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, shape).astype(np.uint8)
    labels[rng.random(shape) < ignore_fraction] = 255
    logits = rng.normal(size=shape + (num_classes,)).astype(np.float32)
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    return labels, logits, probs


def _numpy_ce(labels, probs):
    # Definition: mean over non-void pixels of -log p[label].
    keep = labels != 255
    picked = np.take_along_axis(probs, np.where(keep, labels, 0)[..., None].astype(np.int64),
                                -1)[..., 0]
    return float(-np.log(picked[keep]).mean())


def _numpy_dice(labels, probs, smooth=1.0):
    # Definition: 1 - mean_c (2 sum p*g + s) / (sum p + sum g + s) over non-void pixels.
    keep = labels != 255
    p = probs[keep]
    g = np.eye(probs.shape[-1])[labels[keep]]
    dice = (2 * (p * g).sum(0) + smooth) / (p.sum(0) + g.sum(0) + smooth)
    return float(1 - dice.mean())


@pytest.mark.backend
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cross_entropy_matches_numpy(seed):
    labels, logits, probs = _case(seed)
    expected = _numpy_ce(labels, probs)
    got = keras.ops.convert_to_numpy(sparse_cross_entropy(labels, probs))
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    got_logits = keras.ops.convert_to_numpy(sparse_cross_entropy(labels, logits,
                                                                 from_logits=True))
    np.testing.assert_allclose(got_logits, expected, rtol=1e-5)
    # A trailing channel axis on the labels is the same thing.
    got = keras.ops.convert_to_numpy(sparse_cross_entropy(labels[..., None], probs))
    np.testing.assert_allclose(got, expected, rtol=1e-5)


@pytest.mark.backend
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dice_matches_numpy(seed):
    labels, logits, probs = _case(seed)
    expected = _numpy_dice(labels, probs)
    got = keras.ops.convert_to_numpy(dice_loss(labels, probs))
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    got = keras.ops.convert_to_numpy(dice_loss(labels, logits, from_logits=True))
    np.testing.assert_allclose(got, expected, rtol=1e-5)


@pytest.mark.backend
def test_ignored_pixels_do_not_count():
    labels, _, probs = _case(3)
    changed = probs.copy()
    changed[labels == 255] = np.roll(changed[labels == 255], 1, axis=-1)
    for fn in (sparse_cross_entropy, dice_loss):
        a = keras.ops.convert_to_numpy(fn(labels, probs))
        b = keras.ops.convert_to_numpy(fn(labels, changed))
        np.testing.assert_allclose(a, b, rtol=1e-6)
    # Everything ignored: cross-entropy 0, not NaN.
    void = np.full((1, 2, 2), 255, np.uint8)
    assert float(keras.ops.convert_to_numpy(sparse_cross_entropy(void, probs[:1, :2, :2]))) == 0


@pytest.mark.backend
def test_perfect_prediction_scores_zero():
    labels, _, _ = _case(4, ignore_fraction=0.0)
    one_hot = np.eye(4, dtype=np.float32)[labels]
    assert float(keras.ops.convert_to_numpy(dice_loss(labels, one_hot))) == pytest.approx(0, abs=1e-6)
    assert float(keras.ops.convert_to_numpy(sparse_cross_entropy(labels, one_hot))) < 1e-5


@pytest.mark.backend
def test_combined_loss_weights_and_config_round_trip():
    labels, _, probs = _case(5)
    loss = segmentation_loss("ce+dice")
    expected = _numpy_ce(labels, probs) + _numpy_dice(labels, probs)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loss(labels, probs)), expected,
                               rtol=1e-5)
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(restored, SegmentationLoss)
    assert restored.get_config() == loss.get_config()
    np.testing.assert_allclose(keras.ops.convert_to_numpy(restored(labels, probs)), expected,
                               rtol=1e-5)
    with pytest.raises(ValueError, match="focal"):
        segmentation_loss("focal")


@pytest.mark.backend
def test_trains_a_model():
    labels, _, _ = _case(6, shape=(4, 8, 8), num_classes=3)
    images = np.random.default_rng(0).random((4, 8, 8, 3)).astype(np.float32)
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(3, 1, activation="softmax")])
    model.compile(optimizer="adam", loss=segmentation_loss("ce+dice"))
    history = model.fit(images, labels, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
