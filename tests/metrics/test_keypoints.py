"""Keypoint heatmap targets, peak decoding, PCK and model evaluation against hand
computations.

The functions are numpy (no keras.ops), so one backend covers them.
"""

import math

import numpy as np
import pytest

from kerascv_suite.metrics.keypoints import (PCKAccumulator, box_normalizer, decode_peaks,
                                             evaluate_pck, gaussian_heatmaps, heatmap_outputs,
                                             match_unordered, pck, pck_metric_name,
                                             predict_keypoints)


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


def test_single_peak_is_the_argmax_cell():
    heatmaps = np.random.default_rng(0).random((3, 16, 12, 4)).astype("float32")
    coords, scores = decode_peaks(heatmaps, 1, stride=4)
    cells = heatmaps.reshape(3, -1, 4).argmax(1)  # (batch, channels), row-major
    # Back to heatmap cells: input / stride - 0.5, then at most a quarter cell off.
    u, v = coords[:, :, 0, 0] / 4 - 0.5, coords[:, :, 0, 1] / 4 - 0.5
    np.testing.assert_array_equal(np.round(v) * 12 + np.round(u), cells)
    assert np.abs(u - np.round(u)).max() <= 0.25 and np.abs(v - np.round(v)).max() <= 0.25
    np.testing.assert_allclose(scores[..., 0], heatmaps.max(axis=(1, 2)))


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


class _Oracle:
    """A stand-in stacked heatmap model: the last stack returns the true heatmaps (of the
    keypoints given per call, in order), shifted right by `shift` cells."""

    def __init__(self, keypoints_per_call, shift=0, agnostic=True, stacked=True):
        self.name = "oracle"
        self.output = {"heatmaps_2": None, "heatmaps_1": None} if stacked else None
        self.calls, self.shift = list(keypoints_per_call), shift
        self.agnostic, self.stacked = agnostic, stacked

    def predict_on_batch(self, images):
        keypoints = self.calls.pop(0)
        assert len(keypoints) == len(images)
        maps = gaussian_heatmaps(keypoints, (16, 16), 4, agnostic=self.agnostic)
        shifted = np.zeros_like(maps)  # moved right, not wrapped around
        shifted[:, :, self.shift:] = maps[:, :, : maps.shape[2] - self.shift]
        if not self.stacked:
            return shifted
        return {"heatmaps_1": np.full_like(maps, 5.0), "heatmaps_2": shifted}


def _cell(u, v):
    """Input pixels of heatmap cell (u, v)'s centre at stride 4: exact to decode."""
    return [(u + 0.5) * 4, (v + 0.5) * 4]


def _pck_batches():
    """Two batches of 64x64 crops: objects A (box side 30, 4 labelled keypoints), then B
    (side 50, 3 labelled) and C (side 100, 2 labelled), keypoints at cell centres at least
    3 cells apart."""
    def obj(side, cells, labelled):
        points = np.zeros((1, 4, 3), np.float32)
        for k, (u, v) in enumerate(cells):
            points[0, k] = [*_cell(u, v), 2 if k < labelled else 0]
        return points, np.array([[10, 10, 10 + side, 10 + side / 2]], np.float32)

    a = obj(30, [(1, 1), (5, 1), (1, 5), (5, 5)], 4)
    b = obj(50, [(2, 2), (8, 2), (2, 9), (6, 6)], 3)
    c = obj(100, [(3, 10), (9, 10), (0, 0), (0, 0)], 2)

    def batch(objects):
        return {"images": np.zeros((len(objects), 64, 64, 3), np.uint8),
                "keypoints": np.stack([o[0] for o in objects]),
                "boxes": np.stack([o[1] for o in objects])}

    return [batch([a]), batch([b, c])]


def test_evaluate_pck_of_a_perfect_model_is_one():
    batches = _pck_batches()
    oracle = _Oracle([b["keypoints"] for b in batches])
    assert evaluate_pck(oracle, batches, prefix="val_") == {
        "val_pck_0.05": 1.0, "val_pck": 1.0, "val_pck_0.2": 1.0}
    # One channel per keypoint, a plain (not stacked) output.
    oracle = _Oracle([b["keypoints"] for b in batches], agnostic=False, stacked=False)
    assert evaluate_pck(oracle, batches, agnostic=False) == {
        "pck_0.05": 1.0, "pck": 1.0, "pck_0.2": 1.0}


def test_evaluate_pck_of_a_shifted_model_by_hand():
    batches = _pck_batches()
    oracle = _Oracle([b["keypoints"] for b in batches], shift=1)
    scores = evaluate_pck(oracle, batches, alphas=(0.05, 0.1, 0.2))
    # Every prediction is 1 cell = 4 px right of its keypoint. Thresholds alpha * side:
    # A (side 30): 1.5, 3, 6; B (50): 2.5, 5, 10; C (100): 5, 10, 20.
    # alpha 0.05: C's 2 of 9 labelled; 0.1: B's 3 + C's 2; 0.2: all 9. (Batch means would
    # give 0.5 at alpha 0.1: 0 / 4 and 5 / 5.)
    assert scores == pytest.approx({"pck_0.05": 2 / 9, "pck": 5 / 9, "pck_0.2": 1.0})
    predicted, heatmaps = predict_keypoints(
        _Oracle([batches[1]["keypoints"]], shift=1), batches[1]["images"],
        batches[1]["keypoints"][:, 0])
    assert heatmaps.shape == (2, 16, 16, 1)
    expected = batches[1]["keypoints"][:, 0, :, :2] + [4, 0]
    np.testing.assert_allclose(predicted[0, :3], expected[0, :3])
    np.testing.assert_allclose(predicted[1, :2], expected[1, :2])
    assert np.isnan(predicted[0, 3]).all() and np.isnan(predicted[1, 2:]).all()


def test_evaluate_pck_rejects_the_wrong_channel_count():
    batches = _pck_batches()
    oracle = _Oracle([b["keypoints"] for b in batches], agnostic=False)
    with pytest.raises(ValueError, match=r"agnostic=True .* 1 heatmap channel"):
        evaluate_pck(oracle, batches)


def test_metric_names_and_stacked_outputs():
    assert [pck_metric_name(a, "test_") for a in (0.05, 0.1, 0.2)] == [
        "test_pck_0.05", "test_pck", "test_pck_0.2"]
    oracle = _Oracle([])
    oracle.output = {f"heatmaps_{i}": None for i in (10, 2, 1)}
    assert heatmap_outputs(oracle) == ["heatmaps_1", "heatmaps_2", "heatmaps_10"]
    oracle.output = {"heatmaps_1": None, "logits": None}
    with pytest.raises(ValueError, match="stacked heatmaps"):
        heatmap_outputs(oracle)
