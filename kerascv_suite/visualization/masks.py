"""Segmentation masks drawn for people: VOC palette colours and overlays on the image.

OpenCV (imported on first use) does the per-pixel work: a lookup table, a blend that rounds
like numpy, a masked copy. It costs several times less CPU than numpy indexing, which matters
where overlays are written by threads that share the cores with the model (`kcv segment`).

Example:
    >>> out = overlay_mask(image, mask, alpha=0.5)  # (height, width, 3) uint8
    >>> panel = overlay_panel(image, truth, prediction)  # (height, 3 * width, 3)
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
