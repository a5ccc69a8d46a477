"""Keypoint heatmaps: Gaussian targets, peak decoding, PCK, and PCK evaluation of a model.

Coordinates are continuous pixel coordinates, as in the data layer: pixel `i` covers
`[i, i + 1)`, so its centre is `i + 0.5`. A heatmap of stride `s` has cell `j` covering input
pixels `[j * s, (j + 1) * s)`: heatmap coordinate `u` (cell centres at integers) is input
coordinate `(u + 0.5) * s`.

PCK, "percentage of correct keypoints" (Yang & Ramanan, "Articulated Human Detection with
Flexible Mixtures of Parts", TPAMI 2013, section 7): a predicted keypoint is correct when it
lies within `alpha * max(box_height, box_width)` of the ground truth, the box being the
object's bounding box; PCK is the fraction of labelled keypoints that are correct. (MPII's
PCKh uses the head segment length instead of the box side; we have no heads, so we use the
box side.) `alpha = 0.1` is the usual threshold.

Everything here is numpy: the metrics run once per epoch on predictions already on the host,
the same way on every backend. `evaluate_pck` takes any model with `predict_on_batch` whose
output is a heatmap tensor or a dict of stacked `heatmaps_<stack>` (the Stacked Hourglass).
"""

from __future__ import annotations

import numpy as np

PCK_ALPHAS = (0.05, 0.1, 0.2)
# The usual threshold: its metric is plain `pck`, the others are named by their alpha.
DEFAULT_ALPHA = 0.1


def gaussian_heatmaps(keypoints, heatmap_size, stride=4, sigma=1.0, agnostic=False):
    """Target heatmaps: an unnormalised Gaussian (peak 1) at every labelled keypoint.

    Newell et al., "Stacked Hourglass Networks for Human Pose Estimation" (ECCV 2016),
    section 3.3: "a 2D gaussian with standard deviation of 1 px centered on the joint
    location", on 64x64 heatmaps. The centre here is sub-pixel (not rounded to a cell).
    Where Gaussians of one channel overlap, the maximum is kept.

    Args:
        keypoints: `(batch, num_objects, num_keypoints, 3)` `(x, y, visibility)` in input
            pixels; visibility 0 means unlabelled (no Gaussian).
        heatmap_size: `(height, width)` of the heatmaps.
        stride: input pixels per heatmap cell.
        sigma: standard deviation in heatmap cells.
        agnostic: True draws every keypoint into one channel (interchangeable keypoints,
            e.g. polygon corners); False gives channel `k` to keypoint `k` of every object.

    Returns:
        float32 `(batch, height, width, channels)`, channels 1 or `num_keypoints`.
    """
    keypoints = np.asarray(keypoints, np.float32)
    batch, _, num_keypoints, _ = keypoints.shape
    height, width = (int(v) for v in heatmap_size)
    channels = 1 if agnostic else num_keypoints
    out = np.zeros((batch, height, width, channels), np.float32)
    u = keypoints[..., 0] / stride - 0.5
    v = keypoints[..., 1] / stride - 0.5
    xs = np.arange(width, dtype=np.float32)
    ys = np.arange(height, dtype=np.float32)
    for b, o, k in zip(*np.nonzero(keypoints[..., 2] > 0)):
        gx = np.exp(-((xs - u[b, o, k]) ** 2) / (2 * sigma**2))
        gy = np.exp(-((ys - v[b, o, k]) ** 2) / (2 * sigma**2))
        c = 0 if agnostic else k
        np.maximum(out[b, :, :, c], gy[:, None] * gx[None, :], out=out[b, :, :, c])
    return out


def decode_peaks(heatmaps, num_peaks, stride=1):
    """The `num_peaks` highest local maxima of every channel, with the quarter-pixel shift.

    The library's one heatmap decoder (`models.segmentation.decode_heatmaps` is its single
    highest peak in pixel-index coordinates). A local maximum is a cell no smaller than its
    8 neighbours. As in the authors' evaluation code, each peak moves 0.25 cell towards the
    higher of its two neighbours along x and along y (no shift along an axis where the peak
    lies on the border).

    Args:
        heatmaps: `(batch, height, width, channels)` array.
        num_peaks: peaks per channel, highest first (a channel with fewer local maxima is
            filled with its next highest cells).
        stride: input pixels per heatmap cell.

    Returns:
        `(coordinates, scores)`: float32 `(batch, channels, num_peaks, 2)` `(x, y)` in
        continuous input pixels, and float32 `(batch, channels, num_peaks)` heatmap values.
    """
    heatmaps = np.asarray(heatmaps, np.float32)
    batch, height, width, channels = heatmaps.shape
    maps = np.moveaxis(heatmaps, -1, 1)  # (batch, channels, height, width)
    padded = np.pad(maps, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    windows = np.stack([padded[..., dy:dy + height, dx:dx + width]
                        for dy in range(3) for dx in range(3)])
    is_peak = maps >= windows.max(axis=0)
    # Local maxima first (by value), then every other cell (by value).
    ranking = np.where(is_peak, maps, maps - (maps.max() - maps.min() + 1.0))
    flat = ranking.reshape(batch, channels, -1)
    order = np.argsort(-flat, axis=-1, kind="stable")[..., :num_peaks]
    y, x = np.divmod(order, width)
    scores = np.take_along_axis(maps.reshape(batch, channels, -1), order, -1)
    bi = np.arange(batch)[:, None, None]
    ci = np.arange(channels)[None, :, None]

    def value(yy, xx):
        return padded[bi, ci, yy + 1, xx + 1]  # -inf beyond the border

    # At a border one neighbour is missing; like the authors' code, no shift along that axis.
    inner_x, inner_y = (x > 0) & (x < width - 1), (y > 0) & (y < height - 1)
    with np.errstate(invalid="ignore"):
        dx = np.where(inner_x, np.sign(value(y, x + 1) - value(y, x - 1)), 0.0)
        dy = np.where(inner_y, np.sign(value(y + 1, x) - value(y - 1, x)), 0.0)
    coords = np.stack([x + 0.25 * dx, y + 0.25 * dy], -1)
    return ((coords + 0.5) * stride).astype(np.float32), scores.astype(np.float32)


def match_unordered(predicted, target, visible):
    """Assigns interchangeable predictions to ground-truth keypoints.

    For keypoints without identity (the corners of a regular polygon are equal under its
    rotations), each object's `n` labelled keypoints take its first `n` predictions (the
    highest peaks), paired by the assignment of least total distance (Hungarian algorithm),
    as pose metrics of symmetric objects take the closest symmetric pose (ADD-S,
    Hinterstoisser et al., ACCV 2012).

    Args:
        predicted: `(num_objects, num_candidates, 2)`, best first.
        target: `(num_objects, num_keypoints, 2)`.
        visible: `(num_objects, num_keypoints)` bool, which targets are labelled.

    Returns:
        float32 `(num_objects, num_keypoints, 2)`: the prediction assigned to each target
        (unlabelled targets get NaN).
    """
    from scipy.optimize import linear_sum_assignment

    predicted = np.asarray(predicted, np.float32)
    target = np.asarray(target, np.float32)
    visible = np.asarray(visible, bool)
    out = np.full(target.shape, np.nan, np.float32)
    for i in range(len(target)):
        rows = np.nonzero(visible[i])[0]
        if len(rows) > predicted.shape[1]:
            raise ValueError(f"Object {i} has {len(rows)} labelled keypoints but only "
                             f"{predicted.shape[1]} candidates. Received: predicted of shape "
                             f"{predicted.shape}")
        candidates = predicted[i, : len(rows)]
        cost = np.linalg.norm(target[i, rows, None] - candidates[None], axis=-1)
        r, c = linear_sum_assignment(cost)
        out[i, rows[r]] = candidates[c]
    return out


def box_normalizer(boxes):
    """`max(height, width)` of `(..., 4)` `xyxy` boxes: Yang & Ramanan's PCK scale."""
    boxes = np.asarray(boxes, np.float32)
    return np.maximum(boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1])


def pck(predicted, target, visible, normalizer, alpha=0.1):
    """Percentage of correct keypoints (Yang & Ramanan, TPAMI 2013).

    Args:
        predicted, target: `(num_objects, num_keypoints, 2)` in the same pixels.
        visible: `(num_objects, num_keypoints)`; only labelled keypoints count.
        normalizer: `(num_objects,)` object scale, e.g. `box_normalizer(boxes)`.
        alpha: threshold as a fraction of the scale.

    Returns:
        The fraction (0..1) of labelled keypoints within `alpha * normalizer` of their
        target; NaN when nothing is labelled.
    """
    correct, total = pck_counts(predicted, target, visible, normalizer, alpha)
    return correct / total if total else float("nan")


def pck_counts(predicted, target, visible, normalizer, alpha=0.1):
    """`(correct, labelled)` keypoint counts of `pck`, to accumulate over batches."""
    visible = np.asarray(visible, bool)
    distance = np.linalg.norm(np.asarray(predicted, np.float32) - target, axis=-1)
    threshold = alpha * np.asarray(normalizer, np.float32)[:, None]
    correct = visible & (distance <= threshold)  # NaN predictions are never correct
    return int(correct.sum()), int(visible.sum())


class PCKAccumulator:
    """PCK at several thresholds over a whole dataset (counts summed, not batch means).

    Example:
        >>> acc = PCKAccumulator((0.05, 0.1, 0.2))
        >>> acc.update(predicted, target, visible, box_normalizer(boxes))
        >>> acc.result()   # {0.05: ..., 0.1: ..., 0.2: ...}
    """

    def __init__(self, alphas=PCK_ALPHAS):
        self.alphas = tuple(alphas)
        self.correct = dict.fromkeys(self.alphas, 0)
        self.total = 0

    def update(self, predicted, target, visible, normalizer):
        for alpha in self.alphas:
            correct, total = pck_counts(predicted, target, visible, normalizer, alpha)
            self.correct[alpha] += correct
        self.total += total

    def result(self) -> dict:
        return {a: (self.correct[a] / self.total if self.total else float("nan"))
                for a in self.alphas}


def pck_metric_name(alpha, prefix=""):
    """The logged name of PCK at `alpha`: `pck` for 0.1, else e.g. `pck_0.05`, after
    `prefix` (`"val_"`, `"test_"`)."""
    return f"{prefix}pck" if alpha == DEFAULT_ALPHA else f"{prefix}pck_{alpha:g}"


def heatmap_outputs(model) -> list[str]:
    """A stacked heatmap model's output names, first stack first; the last is the prediction.

    Args:
        model: a model whose `output` is a dict `{"heatmaps_1": ..., "heatmaps_<n>": ...}`
            (e.g. `models.build("hourglass")`).

    Returns:
        The output names sorted by stack number.
    """
    names = list(model.output) if isinstance(model.output, dict) else []
    if not names or not all(n.startswith("heatmaps_") for n in names):
        raise ValueError(f"{getattr(model, 'name', model)} does not output stacked heatmaps "
                         f"(a dict of 'heatmaps_<stack>'). Received: outputs "
                         f"{names or model.output}")
    return sorted(names, key=lambda n: int(n.rsplit("_", 1)[1]))


def predict_keypoints(model, images, keypoints, stride=4, agnostic=True):
    """A model's keypoint predictions for crops with known keypoints, in input pixels.

    With `agnostic=True` (one heatmap channel of interchangeable keypoints, e.g. polygon
    corners), each object takes as many of the channel's highest peaks as it has labelled
    keypoints, assigned to them by `match_unordered`. With `agnostic=False`, channel `k`'s
    highest peak is keypoint `k`.

    Args:
        model: has `predict_on_batch(images)` returning `(batch, height, width, channels)`
            heatmaps, or a dict of stacked `heatmaps_<stack>` (the last stack is used).
        images: `(batch, image_height, image_width, channels)` model inputs.
        keypoints: `(batch, num_keypoints, 3)` true `(x, y, visibility)` in input pixels;
            only their visibility (and, when agnostic, their positions, for the matching)
            are read.
        stride: input pixels per heatmap cell.
        agnostic: one class-agnostic channel (True) or one channel per keypoint (False).

    Returns:
        `(predicted, heatmaps)`: float32 `(batch, num_keypoints, 2)` `(x, y)` in input
        pixels (NaN for unlabelled keypoints when agnostic), and the float32
        `(batch, height, width, channels)` heatmaps decoded.
    """
    outputs = model.predict_on_batch(images)
    if isinstance(outputs, dict):
        outputs = outputs[heatmap_outputs(model)[-1]]
    heatmaps = np.asarray(outputs, np.float32)
    keypoints = np.asarray(keypoints, np.float32)
    num_keypoints, channels = keypoints.shape[-2], heatmaps.shape[-1]
    expected = 1 if agnostic else num_keypoints
    if channels != expected:
        raise ValueError(f"agnostic={agnostic} decoding of {num_keypoints} keypoints needs "
                         f"{expected} heatmap channel(s). Received: heatmaps of shape "
                         f"{heatmaps.shape}")
    if not agnostic:
        coords, _ = decode_peaks(heatmaps, 1, stride=stride)
        return coords[:, :, 0], heatmaps
    coords, _ = decode_peaks(heatmaps, num_keypoints, stride=stride)
    return match_unordered(coords[:, 0], keypoints[..., :2], keypoints[..., 2] > 0), heatmaps


def evaluate_pck(model, batches, alphas=PCK_ALPHAS, stride=4, agnostic=True, prefix=""):
    """PCK of a heatmap model over a whole split, normalised by each object's box.

    Args:
        model: as in `predict_keypoints`.
        batches: iterable of batch dicts with `images` `(batch, height, width, channels)`,
            `keypoints` `(batch, 1, num_keypoints, 3)` and `boxes` `(batch, 1, 4)` `xyxy`,
            in input pixels (one object per crop, as `DataLoader` batches of
            `data.keypoint_crops.TopDownCrop` samples).
        alphas: PCK thresholds, as fractions of `max(box height, box width)`.
        stride: input pixels per heatmap cell.
        agnostic: see `predict_keypoints`.
        prefix: put before every metric name (`"val_"`, `"test_"`).

    Returns:
        `{pck_metric_name(alpha, prefix): pck}` for every alpha, e.g. `{"val_pck_0.05": ...,
        "val_pck": ..., "val_pck_0.2": ...}`: labelled keypoints counted over all batches
        (NaN when none is labelled).
    """
    accumulator = PCKAccumulator(alphas)
    for batch in batches:
        keypoints = np.asarray(batch["keypoints"])[:, 0]
        predicted, _ = predict_keypoints(model, batch["images"], keypoints, stride, agnostic)
        accumulator.update(predicted, keypoints[..., :2], keypoints[..., 2] > 0,
                           box_normalizer(np.asarray(batch["boxes"])[:, 0]))
    return {pck_metric_name(a, prefix): float(v) for a, v in accumulator.result().items()}
