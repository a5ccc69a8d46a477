"""Matcher cases worked by hand, and the balanced sampler's counts and determinism."""

import numpy as np
import pytest
from keras import ops

from kerascv_suite.bounding_box import BalancedPositiveNegativeSampler, Matcher

pytestmark = pytest.mark.backend


def _np(x):
    return ops.convert_to_numpy(x)


# 5 anchors x 3 gt; gt 2 is padding (its IoUs must never count).
IOU = np.array([[[0.80, 0.10, 0.95],
                 [0.50, 0.20, 0.00],
                 [0.10, 0.25, 0.00],
                 [0.05, 0.10, 0.00],
                 [0.10, 0.10, 0.00]]], "float32")
VALID = np.array([[True, True, False]])


def test_thresholds_and_ignore_band():
    matched, labels = Matcher(0.7, 0.3)(IOU, VALID)
    # Anchor 0: best valid 0.80 >= .7 -> positive on gt 0 (not the padded gt 2 at .95);
    # anchor 1: .50 in [.3, .7) -> ignore; anchors 2-4: best < .3 -> negative.
    np.testing.assert_array_equal(_np(labels), [[1, -1, 0, 0, 0]])
    assert _np(matched)[0, 0] == 0


def test_low_quality_matches_force_best_anchor_of_each_gt():
    matched, labels = Matcher(0.7, 0.3, allow_low_quality_matches=True)(IOU, VALID)
    # gt 1's best anchor is anchor 2 (.25): forced positive, matched to its own best, gt 1.
    # gt 0's best is anchor 0 (already positive).
    np.testing.assert_array_equal(_np(labels), [[1, -1, 1, 0, 0]])
    assert _np(matched)[0, 2] == 1


def test_ties_of_the_best_anchor_are_all_forced():
    iou = np.array([[[0.4], [0.4], [0.1]]], "float32")
    _, labels = Matcher(0.7, 0.3, allow_low_quality_matches=True)(iou)
    np.testing.assert_array_equal(_np(labels), [[1, 1, 0]])


def test_padding_only_and_no_gt():
    iou = np.zeros((1, 3, 2), "float32")
    _, labels = Matcher(0.5, 0.5, allow_low_quality_matches=True)(iou, np.zeros((1, 2), bool))
    np.testing.assert_array_equal(_np(labels), [[0, 0, 0]])
    _, labels = Matcher(0.5, 0.5)(np.zeros((2, 3, 0), "float32"))
    np.testing.assert_array_equal(_np(labels), np.zeros((2, 3)))


def test_sampler_fractions_and_limits():
    rng = np.random.default_rng(0)
    labels = np.full((2, 2000), 0, "int32")
    labels[0, rng.choice(2000, 400, replace=False)] = 1  # plenty of positives
    labels[1, rng.choice(2000, 20, replace=False)] = 1  # few positives
    labels[:, :100] = np.where(labels[:, :100] == 1, 1, -1)  # some ignored
    pos, neg = BalancedPositiveNegativeSampler(256, 0.5, seed=1)(labels)
    pos, neg = _np(pos), _np(neg)
    # Faster R-CNN sec 3.1.3: 256 per image, up to 1:1 -> image 0: 128 + 128; image 1 has
    # only 20 positives, padded with 236 negatives.
    np.testing.assert_array_equal(pos.sum(1), [128, 20])
    np.testing.assert_array_equal(neg.sum(1), [128, 236])
    assert np.all(labels[pos] == 1) and np.all(labels[neg] == 0)
    assert not np.any(pos & neg)


def test_sampler_is_deterministic_with_a_seed_and_random_across_calls():
    labels = np.zeros((1, 500), "int32")
    labels[0, ::5] = 1
    a = BalancedPositiveNegativeSampler(64, 0.25, seed=3)
    b = BalancedPositiveNegativeSampler(64, 0.25, seed=3)
    first_a, first_b = _np(a(labels)[0]), _np(b(labels)[0])
    np.testing.assert_array_equal(first_a, first_b)
    assert first_a.sum() == 16  # 64 * 0.25
    assert not np.array_equal(first_a, _np(a(labels)[0]))
