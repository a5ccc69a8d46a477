"""Detections drawn on images (OpenCV), and panels tiled into one preview image.

Example:
    >>> panel = draw_detections(image, boxes, scores, classes, ["circle", "square"])
    >>> write_image("samples.png", sample_grid([panel, panel], columns=2))
"""

from __future__ import annotations

import math

import numpy as np


def class_colour(class_id):
    """The RGB colour of a class id: well-separated hues, fixed so every report and overlay
    colours a class the same way.

    Returns:
        A tuple of three ints in 0..255.
    """
    import cv2

    hue = int(class_id * 47) % 180
    bgr = cv2.cvtColor(np.uint8([[[hue, 220, 230]]]), cv2.COLOR_HSV2BGR)[0, 0]
    return tuple(int(c) for c in bgr[::-1])


def draw_detections(image, boxes, scores, classes, class_names, gt_boxes=None,
                    score_threshold=0.25, scale=None):
    """`image` with its detections drawn as coloured, labelled boxes and the ground truth
    (if given) as thin white boxes; enlarged `scale` times for small images.

    Args:
        image: `(height, width, 3)` RGB or `(height, width, 1)` gray, uint8.
        boxes: `(num_detections, 4)` xyxy in image pixels.
        scores: `(num_detections,)`; boxes scoring below `score_threshold` are not drawn.
        classes: `(num_detections,)` class ids; -1 (padding) is not drawn.
        class_names: names of the class ids, written with the score.
        gt_boxes: `(num_gt, 4)` xyxy, or None.
        score_threshold: the lowest score drawn.
        scale: integer enlargement (None: enough to make the longer side >= 256 pixels).

    Returns:
        `(height * scale, width * scale, 3)` uint8 RGB.
    """
    import cv2

    image = np.asarray(image, np.uint8)
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    scale = scale or max(1, int(math.ceil(256 / max(image.shape[:2]))))
    out = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    out = np.ascontiguousarray(out)
    for box in np.asarray(gt_boxes if gt_boxes is not None else [], np.float32).reshape(-1, 4):
        x1, y1, x2, y2 = (box * scale).round().astype(int)
        cv2.rectangle(out, (x1, y1), (x2, y2), (255, 255, 255), 1)
    for box, score, cls in zip(np.asarray(boxes).reshape(-1, 4), np.asarray(scores).ravel(),
                               np.asarray(classes).ravel()):
        if cls < 0 or score < score_threshold:
            continue
        x1, y1, x2, y2 = (box * scale).round().astype(int)
        colour = class_colour(int(cls))
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, 2)
        label = f"{class_names[int(cls)]} {score:.2f}"
        (w, h), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)
        top = max(y1 - h - 4, 0)
        cv2.rectangle(out, (x1, top), (x1 + w + 2, top + h + 4), colour, -1)
        cv2.putText(out, label, (x1 + 1, top + h + 1), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                    (0, 0, 0), 1, cv2.LINE_AA)
    return out


def sample_grid(panels, columns=4, gap=4):
    """Equal-size RGB panels tiled into one image, row by row, on white.

    Args:
        panels: a non-empty list of `(height, width, 3)` uint8 images of one size.
        columns: panels per row (at most `len(panels)`).
        gap: white pixels between panels.

    Returns:
        `(rows * (height + gap) - gap, columns * (width + gap) - gap, 3)` uint8.
    """
    if not panels:
        raise ValueError("sample_grid needs at least one panel. Received: panels=[]")
    height, width = panels[0].shape[:2]
    columns = min(columns, len(panels))
    rows = math.ceil(len(panels) / columns)
    grid = np.full((rows * (height + gap) - gap, columns * (width + gap) - gap, 3), 255,
                   np.uint8)
    for i, panel in enumerate(panels):
        r, c = divmod(i, columns)
        grid[r * (height + gap):r * (height + gap) + height,
             c * (width + gap):c * (width + gap) + width] = panel
    return grid
