"""Drawing keypoint predictions: a crop with its true and predicted keypoints beside its
heatmap.

Images are uint8 RGB `(height, width, 3)`; coordinates are continuous pixels (pixel `i` covers
`[i, i + 1)`), as in the data layer. OpenCV draws; it is imported on first use.

Example:
    >>> panels = draw_keypoint_samples(model, loader.iter_epoch(0), count=8)
    >>> write_image("keypoints_0.png", panels[0])
"""

from __future__ import annotations

import numpy as np

TRUE_COLOR = (0, 255, 0)  # green dots
PREDICTED_COLOR = (255, 0, 0)  # red crosses


def draw_sample(image, keypoints, predicted, heatmap, zoom=4):
    """A panel: the crop with true (green) and predicted (red) keypoints, and the heatmap.

    Args:
        image: uint8 `(size, size, 3)` RGB crop.
        keypoints: `(num_keypoints, 3)` true `(x, y, visibility)` in crop pixels; only
            labelled ones (visibility > 0) are drawn, with their predictions.
        predicted: `(num_keypoints, 2)` predicted `(x, y)` in crop pixels.
        heatmap: `(height, width)` heatmap, values clipped to [0, 1] and coloured (jet).
        zoom: magnification of the crop (nearest neighbour) and of the drawn marks.

    Returns:
        uint8 `(size * zoom, 2 * size * zoom, 3)`: the marked crop left, the heatmap
        (resized to the crop) right.
    """
    import cv2

    size = image.shape[0] * zoom
    canvas = cv2.resize(np.ascontiguousarray(image), (size, size),
                        interpolation=cv2.INTER_NEAREST)
    for (x, y, v), (px, py) in zip(keypoints, predicted):
        if v <= 0:
            continue
        cv2.circle(canvas, (int(x * zoom), int(y * zoom)), 2 * zoom, TRUE_COLOR, -1)
        cv2.drawMarker(canvas, (int(px * zoom), int(py * zoom)), PREDICTED_COLOR,
                       cv2.MARKER_CROSS, 4 * zoom, 2)
    heat = np.clip(heatmap, 0, 1)
    heat = cv2.applyColorMap((heat * 255).astype(np.uint8), cv2.COLORMAP_JET)[..., ::-1]
    heat = cv2.resize(heat, (size, size), interpolation=cv2.INTER_NEAREST)
    return np.concatenate([canvas, heat], axis=1)


def draw_keypoint_samples(model, batches, count, stride=4, agnostic=True, zoom=4):
    """`draw_sample` panels of a heatmap model's predictions on the first `count` crops.

    Args:
        model: as in `metrics.keypoints.predict_keypoints` (one heatmap channel drawn: the
            first).
        batches: iterable of batch dicts with `images` `(batch, size, size, 3)` and
            `keypoints` `(batch, 1, num_keypoints, 3)` in crop pixels; read only until
            `count` crops are drawn.
        count: number of panels.
        stride: input pixels per heatmap cell.
        agnostic: see `metrics.keypoints.predict_keypoints`.
        zoom: see `draw_sample`.

    Returns:
        Up to `count` uint8 `(size * zoom, 2 * size * zoom, 3)` panels, in batch order.
    """
    from kerascv_suite.metrics.keypoints import predict_keypoints

    panels = []
    for batch in batches:
        if len(panels) >= count:
            break
        keypoints = np.asarray(batch["keypoints"])[:, 0]
        predicted, heatmaps = predict_keypoints(model, batch["images"], keypoints, stride,
                                                agnostic)
        for row in range(min(len(predicted), count - len(panels))):
            panels.append(draw_sample(batch["images"][row], keypoints[row], predicted[row],
                                      heatmaps[row, ..., 0], zoom))
    return panels
