"""Keypoint heatmap targets, peak decoding and PCK against hand computations.

The functions are numpy (no keras.ops), so one backend covers them; the comparison with the
hourglass's keras.ops `decode_heatmaps` runs on whichever backend the suite uses.
"""

import math

import keras
import numpy as np
import pytest

from kerascv_suite.metrics.keypoints import (PCKAccumulator, box_normalizer, decode_peaks,
                                             gaussian_heatmaps, match_unordered, pck)
from kerascv_suite.models.segmentation import decode_heatmaps


def test_gaussian_heatmaps_by_hand():
    keypoints = np.zeros((1, 2, 2, 3), "float32")
    # Continuous (10, 6) at stride 4 is heatmap (10/4 - 0.5, 6/4 - 0.5) = (2, 1).
    keypoints[0, 0, 0] = (10, 6, 2)
    keypoints[0, 0, 1] = (30, 30, 0)  # unlabelled: no Gaussian
    keypoints[0, 1, 1] = (22, 14, 2)  # heatmap (5, 3)
    maps = gaussian_heatmaps(keypoints, (8, 8), stride=4, sigma=1.0)
    assert maps.shape == (1, 8, 8, 2)
    assert maps[0, 1, 2, 0] == pytest.approx(1.0)
    # One cell away: exp(-1 / (2 * 1^2)); diagonal: exp(-2 / 2).
    assert maps[0, 1, 3, 0] == pytest.approx(math.exp(-0.5))
    assert maps[0, 2, 3, 0] == pytest.approx(math.exp(-1.0))
    assert maps[0, 3, 5, 1] == pytest.approx(1.0)
    assert maps[0, 1, 2, 1] == pytest.approx(math.exp(-(9 + 4) / 2))
    agnostic = gaussian_heatmaps(keypoints, (8, 8), stride=4, sigma=2.0, agnostic=True)
    assert agnostic.shape == (1, 8, 8, 1)
    # Overlapping Gaussians keep the maximum; sigma 2: exp(-d^2 / 8).
    np.testing.assert_allclose(agnostic[0, 2, 4, 0],
                               max(math.exp(-(4 + 1) / 8), math.exp(-(1 + 1) / 8)), rtol=1e-6)


def test_decode_peaks_by_hand():
    heatmaps = np.zeros((1, 8, 10, 1), "float32")
    heatmaps[0, 3, 4, 0] = 1.0
    heatmaps[0, 3, 5, 0] = 0.5  # right neighbour higher -> x + 0.25
    heatmaps[0, 2, 4, 0] = 0.2  # upper neighbour higher -> y - 0.25
    heatmaps[0, 6, 1, 0] = 0.8
    heatmaps[0, 6, 0, 0] = 0.1  # left higher -> x - 0.25; equal vertical neighbours
    heatmaps[0, 7, 9, 0] = 0.6  # corner cell: no shift on either axis
    coords, scores = decode_peaks(heatmaps, 3, stride=1)
    # Heatmap (u, v) is continuous input (u + 0.5, v + 0.5) * stride.
    np.testing.assert_allclose(coords[0, 0], [[4.75, 3.25], [1.25, 6.5], [9.5, 7.5]])
    np.testing.assert_allclose(scores[0, 0], [1.0, 0.8, 0.6])
    scaled, _ = decode_peaks(heatmaps, 1, stride=4)
    np.testing.assert_allclose(scaled[0, 0, 0], [(4.25 + 0.5) * 4, (2.75 + 0.5) * 4])
    # With fewer local maxima than peaks asked for, the next cells by value fill in.
    single = np.array([[0.1, 0.2, 0.1], [0.2, 1.0, 0.5], [0.1, 0.3, 0.1]], "float32")
    coords, scores = decode_peaks(single[None, :, :, None], 3, stride=1)
    np.testing.assert_allclose(scores[0, 0], [1.0, 0.5, 0.3])
    np.testing.assert_allclose(coords[0, 0, 0], [1.75, 1.75])


def test_single_peak_equals_the_hourglass_argmax_decoder():
    heatmaps = np.random.default_rng(0).random((3, 16, 12, 4)).astype("float32")
    ours, scores = decode_peaks(heatmaps, 1, stride=4)
    theirs, their_scores = decode_heatmaps(heatmaps, stride=4)
    # decode_heatmaps returns pixel-index coordinates (centres at integers): + 0.5.
    np.testing.assert_allclose(ours[:, :, 0], keras.ops.convert_to_numpy(theirs) + 0.5,
                               atol=1e-5)
    np.testing.assert_allclose(scores[..., 0], keras.ops.convert_to_numpy(their_scores))


def test_match_unordered_takes_the_closest_assignment():
    square = np.array([[[0, 0], [10, 0], [10, 10], [0, 10]]], "float32")
    candidates = square[:, [2, 0, 3, 1]] + 0.5
    matched = match_unordered(candidates, square, np.ones((1, 4), bool))
    np.testing.assert_allclose(matched, square + 0.5)
    # A triangle (4th point unlabelled) takes the 3 best candidates only; the 4th, on a
    # corner, is ignored.
    triangle = np.array([[[0, 0], [10, 0], [5, 8], [0, 0]]], "float32")
    candidates = np.array([[[5, 7], [1, 0], [9, 1], [10, 0]]], "float32")
    matched = match_unordered(candidates, triangle, np.array([[1, 1, 1, 0]], bool))
    np.testing.assert_allclose(matched[0, :3], [[1, 0], [9, 1], [5, 7]])
    assert np.isnan(matched[0, 3]).all()
    with pytest.raises(ValueError, match="candidates"):
        match_unordered(candidates[:, :2], triangle, np.array([[1, 1, 1, 0]], bool))


def test_pck_by_hand():
    # Object 0: box 20 x 10 -> scale 20; object 1: box 40 x 50 -> scale 50.
    boxes = np.array([[0, 0, 20, 10], [10, 0, 50, 50]], "float32")
    np.testing.assert_allclose(box_normalizer(boxes), [20, 50])
    target = np.zeros((2, 3, 2), "float32")
    predicted = target.copy()
    predicted[0, :, 0] = [1.0, 2.0, 3.0]  # distances 1, 2, 3 against threshold 0.1*20 = 2
    predicted[1, :, 1] = [4.0, 6.0, 99.0]  # 4, 6, 99 against 0.1*50 = 5; the 99 unlabelled
    visible = np.array([[1, 1, 1], [1, 1, 0]], bool)
    # alpha 0.1: correct 1, 2 (on the threshold counts), 4 -> 3 of 5 labelled.
    assert pck(predicted, target, visible, box_normalizer(boxes)) == pytest.approx(3 / 5)
    # alpha 0.05 (thresholds 1 and 2.5): only the distance 1 -> 1 of 5.
    assert pck(predicted, target, visible, [20, 50], alpha=0.05) == pytest.approx(1 / 5)
    # alpha 0.2 (4 and 10): all 5.
    assert pck(predicted, target, visible, [20, 50], alpha=0.2) == 1.0
    assert math.isnan(pck(predicted, target, np.zeros_like(visible), [20, 50]))
    predicted[0, 0] = np.nan  # an unmatched prediction is wrong
    assert pck(predicted, target, visible, [20, 50]) == pytest.approx(2 / 5)


def test_accumulator_sums_counts_not_batch_means():
    rng = np.random.default_rng(1)
    predicted, target = rng.random((2, 7, 4, 2)) * 10
    visible = rng.random((7, 4)) > 0.3
    scale = rng.uniform(10, 40, 7)
    accumulator = PCKAccumulator((0.1, 0.2))
    accumulator.update(predicted[:2], target[:2], visible[:2], scale[:2])
    accumulator.update(predicted[2:], target[2:], visible[2:], scale[2:])
    result = accumulator.result()
    for alpha in (0.1, 0.2):
        assert result[alpha] == pytest.approx(pck(predicted, target, visible, scale, alpha))
