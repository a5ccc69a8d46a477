"""Segmentation masks drawn for people: VOC palette colours and overlays on the image, and
instance masks (`overlay_instances`: a tinted fill and an outline per instance).

OpenCV (imported on first use) does the per-pixel work: a lookup table, a blend that rounds
like numpy, a masked copy. It costs several times less CPU than numpy indexing, which matters
where overlays are written by threads that share the cores with the model (`kcv segment`).

Example:
    >>> out = overlay_mask(image, mask, alpha=0.5)  # (height, width, 3) uint8
    >>> panel = overlay_panel(image, truth, prediction)  # (height, 3 * width, 3)
    >>> out = overlay_instances(image, [mask_a, mask_b], [(255, 0, 0), (0, 255, 0)])
"""

from __future__ import annotations

import functools

import numpy as np


@functools.cache
def palette_array():
    """`(256, 3)` uint8 VOC colours (index = class id); read-only, shared by every call."""
    from kerascv_suite.data import voc_palette

    array = np.asarray(voc_palette(), np.uint8).reshape(256, 3)
    array.flags.writeable = False
    return array


def colorize(mask):
    """`(height, width)` class ids -> `(height, width, 3)` uint8 VOC colours."""
    return palette_array()[np.asarray(mask, np.uint8)]


def overlay_mask(image, mask, alpha=0.5):
    """The image with the coloured mask blended over it; background (0) stays unchanged.

    Args:
        image: `(height, width, 3)` RGB or `(height, width, 1)` gray, uint8.
        mask: `(height, width)` uint8 class ids.
        alpha: opacity of the mask colours.

    Returns:
        `(height, width, 3)` uint8 RGB.
    """
    import cv2

    image = np.ascontiguousarray(image, np.uint8)
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    mask = np.ascontiguousarray(mask, np.uint8)
    colours = cv2.LUT(cv2.merge((mask, mask, mask)), palette_array().reshape(256, 1, 3))
    blended = cv2.addWeighted(image, 1 - alpha, colours, alpha, 0)
    out = image.copy()
    cv2.copyTo(blended, mask, out)  # only where the mask is not background
    return out


def overlay_panel(image, truth, prediction, alpha=0.5):
    """`image | ground truth overlay | prediction overlay`, side by side (training reports).

    Args:
        image: `(height, width, channels)` uint8 (the first 3 channels are drawn; 1 channel
            is drawn gray).
        truth: `(height, width)` class ids; 255 (ignore) is drawn as background.
        prediction: `(height, width)` class ids.
        alpha: opacity of the mask colours.

    Returns:
        `(height, 3 * width, 3)` uint8 RGB.
    """
    return np.concatenate([np.asarray(image[..., :3] if image.shape[-1] >= 3 else
                                      np.repeat(image, 3, axis=-1), np.uint8),
                           overlay_mask(image, np.where(truth == 255, 0, truth), alpha),
                           overlay_mask(image, prediction, alpha)], axis=1)


def overlay_instances(image, masks, colours, offsets=None, alpha=0.45):
    """The image with each instance mask tinted in its colour and outlined.

    Instances are drawn from the last to the first, so where they overlap the first (the
    best-scoring detection, in a detector's order) is on top. Each is drawn only within its
    own rectangle: masks may be crops of the image (`offsets`), which keeps the cost
    proportional to the instances' size, not the image's.

    Args:
        image: `(height, width, 3)` RGB or `(height, width, 1)` gray, uint8.
        masks: a sequence of 2-D 0/1 arrays: full-size `(height, width)` masks, or crops
            placed at `offsets`.
        colours: one RGB tuple per mask (e.g. `visualization.class_colour(class_id)`).
        offsets: `(top, left)` of each crop in the image; None: the masks are full size.
        alpha: opacity of the tint.

    Returns:
        `(height, width, 3)` uint8 RGB.
    """
    import cv2

    out = np.ascontiguousarray(image, np.uint8)
    out = np.repeat(out, 3, axis=-1) if out.shape[-1] == 1 else out.copy()
    if len(masks) != len(colours) or (offsets is not None and len(offsets) != len(masks)):
        raise ValueError(f"one colour (and offset) per mask. Received: {len(masks)} masks, "
                         f"{len(colours)} colours, "
                         f"{None if offsets is None else len(offsets)} offsets")
    height, width = out.shape[:2]
    for k in reversed(range(len(masks))):
        mask = np.ascontiguousarray(masks[k], np.uint8)
        top, left = offsets[k] if offsets is not None else (0, 0)
        h = min(mask.shape[0], height - top)
        w = min(mask.shape[1], width - left)
        if h <= 0 or w <= 0 or not mask.any():
            continue
        mask = np.ascontiguousarray(mask[:h, :w])
        # A contiguous copy of the rectangle: OpenCV draws into contiguous arrays only.
        view = out[top:top + h, left:left + w].copy()
        colour = np.asarray(colours[k], np.float32)
        tinted = (view * (1 - alpha) + colour * alpha + 0.5).astype(np.uint8)
        cv2.copyTo(tinted, mask, view)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(view, contours, -1, tuple(int(c) for c in colours[k]), 1)
        out[top:top + h, left:left + w] = view
    return out
