"""Class maps of images of any size from a segmentation model of a fixed input size.

Host-side pre- and post-processing around `model.predict` (numpy and OpenCV, no graph code),
so the same functions serve `segment_image` (one image) and `kcv segment` (a folder
streamed through tf.data, whose writer threads stitch tiles as they arrive).

Two ways to fit an image of any size to the model's input (`mode`):
    resize  the whole image is resized to the input (`kerascv_suite.data.resize_image`, the
            evaluation augmenters' resize: what models trained on whole, resized images
            expect, the recipes here). The class map is taken (argmax) at the
            model's resolution and resized to the original size with nearest neighbour,
            which keeps class ids intact and costs a fraction of resizing `K` probability
            planes (the model resolved nothing finer than its output grid anyway).
    tile    overlapping windows of the input size (`overlap` of a side shared by
            neighbours) cover the image at its native resolution (for large images, and
            models trained on crops). The image is reflect-padded to the grid, centred, so
            border pixels have context and images smaller than a tile work. Per-pixel class
            probabilities are averaged over the tiles covering the pixel: the model's output
            is a probability (softmax), and the mean of probabilities is the usual ensemble
            of predictions, bounded where logits of an over-confident edge tile are not.
            (The argmax of the per-pixel sum equals that of the mean, as every class of a
            pixel has the same count, so only sums are kept.) The padded map is cropped
            back to exactly the original size.
    auto    tile images more than twice the input size along a side (resizing would
            shrink them more than twofold there), resize the others.

Example:
    >>> mask = segment_image(model, image, mode="tile", tile_overlap=0.25)
    >>> mask.shape == image.shape[:2], mask.dtype
    (True, dtype('uint8'))

The pieces, for a pipeline that batches the inputs of many images:
    >>> inputs, layout = model_inputs(image, (128, 128), channels=3, mode="tile")
    >>> stitcher = MaskStitcher(image.shape[:2], layout)
    >>> for number, probabilities in enumerate(model.predict(inputs)):
    ...     mask = stitcher.add(number, probabilities)  # None until the last tile
"""

from __future__ import annotations

import dataclasses
import math
import threading

import numpy as np

MODES = ("resize", "tile", "auto")


def model_input_size(model, image_size=None):
    """The `(height, width)` a model takes: its fixed input size, else `image_size` square.

    Raises:
        ValueError: the model takes any size and `image_size` is None.
    """
    height, width = model.input_shape[1:3]
    if height is None or width is None:
        if image_size is None:
            raise ValueError(f"{model.name} takes any input size; pass image_size "
                             f"(--image-size). Received: input_shape={model.input_shape}")
        return int(image_size), int(image_size)
    return int(height), int(width)


# === Tiles ===


def tile_origins(length, tile, overlap):
    """Start offsets of overlapping windows along one axis, and the length they cover.

    Windows step by `round(tile * (1 - overlap))` (at least 1 pixel); there are just
    enough to cover `length` (one when `length <= tile`).

    Returns:
        `(origins, covered)`: the list of offsets and `origins[-1] + tile >= length`.
    """
    stride = max(1, round(tile * (1 - overlap)))
    count = 1 if length <= tile else math.ceil((length - tile) / stride) + 1
    origins = [i * stride for i in range(count)]
    return origins, origins[-1] + tile


@dataclasses.dataclass
class TileLayout:
    """Where an image's tiles lie: origins in the padded image, its size and the offset of
    the original image in it."""

    origins: list  # [(y, x)], one per tile, in tile order
    tile: tuple  # (height, width)
    padded: tuple  # (height, width)
    offset: tuple  # (top, left)
    size: tuple  # original (height, width)


def plan_tiles(size, tile, overlap):
    """The `TileLayout` of an image of `size` `(height, width)` cut into `tile`
    `(height, width)` windows sharing `overlap` of a side with their neighbours."""
    ys, padded_h = tile_origins(size[0], tile[0], overlap)
    xs, padded_w = tile_origins(size[1], tile[1], overlap)
    return TileLayout([(y, x) for y in ys for x in xs], tuple(tile), (padded_h, padded_w),
                      ((padded_h - size[0]) // 2, (padded_w - size[1]) // 2), tuple(size))


def cut_tiles(image, tile, overlap):
    """Overlapping windows of an image, reflect-padded (centred) to the area they cover.

    Args:
        image: `(height, width, channels)`.
        tile: `(tile_height, tile_width)`.
        overlap: fraction of a side shared by neighbours, in `[0, 1)`.

    Returns:
        `(tiles, layout)`: `(num_tiles, tile_height, tile_width, channels)` of the image's
        dtype, and their `TileLayout`.
    """
    import cv2

    layout = plan_tiles(image.shape[:2], tile, overlap)
    (top, left), (ph, pw) = layout.offset, layout.padded
    height, width = image.shape[:2]
    # BORDER_REFLECT_101 (mirror without repeating the edge) also pads past a small
    # image's own size, where numpy's reflect would need several passes.
    padded = cv2.copyMakeBorder(image, top, ph - height - top, left, pw - width - left,
                                cv2.BORDER_REFLECT_101).reshape(ph, pw, image.shape[-1])
    tiles = np.stack([padded[y:y + tile[0], x:x + tile[1]] for y, x in layout.origins])
    return tiles, layout


def uses_tiles(size, tile, mode):
    """Whether an image of `size` `(height, width)` is tiled under `mode` (see the module
    docstring) for a model input of `tile` `(height, width)`."""
    if mode == "auto":
        return size[0] > 2 * tile[0] or size[1] > 2 * tile[1]
    return mode == "tile"


def model_inputs(image, size, channels=3, mode="resize", overlap=0.25):
    """The model inputs of one RGB image: itself resized, or its tiles.

    Args:
        image: `(height, width, 3)` uint8 RGB.
        size: the model's input `(input_height, input_width)`.
        channels: the model's input channels: 3 (RGB) or 1 (the image turned gray).
        mode: "resize", "tile" or "auto" (see the module docstring).
        overlap: fraction of a tile's side shared with its neighbour, in `[0, 1)`.

    Returns:
        `(inputs, layout)`: `(n, input_height, input_width, channels)` uint8 (`n` = 1 when
        resized) and the `TileLayout`, or None when resized.
    """
    import cv2

    from kerascv_suite.data.image_io import resize_image

    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}. Received: mode={mode!r}")
    source = image if channels == 3 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[..., None]
    if uses_tiles(image.shape[:2], size, mode):
        inputs, layout = cut_tiles(source, size, overlap)
    else:
        inputs, layout = resize_image(source, size)[None], None
    return inputs.reshape(-1, size[0], size[1], channels), layout


# === Stitching ===


def class_map(probabilities, size):
    """`(h, w, K)` probabilities -> `(height, width)` uint8 class ids: the argmax at the
    model's resolution, resized (nearest) to `size` `(height, width)` when it differs."""
    import cv2

    mask = np.asarray(probabilities).argmax(-1).astype(np.uint8)
    if mask.shape != tuple(size):
        mask = cv2.resize(mask, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)
    return mask


class MaskStitcher:
    """Turns the model outputs of one image's inputs (`model_inputs`) into its class map.

    Resized (`layout` None): the one output's `class_map` at the image size. Tiled: each
    tile's probabilities are added into a `(padded_height, padded_width, K)` float32 sum
    at its origin; when the last tile is in, the sum is cropped to the image and its
    argmax taken. Tiles may arrive in any order and from several threads.

    Args:
        size: the image's `(height, width)`.
        layout: its `TileLayout`, or None when it was resized.
    """

    def __init__(self, size, layout=None):
        self.size = tuple(size)
        self.layout = layout
        self.remaining = len(layout.origins) if layout else 1
        self._sums = None
        self._lock = threading.Lock()

    def add(self, number, probabilities):
        """Adds input `number`'s `(h, w, K)` probabilities.

        Returns:
            The `(height, width)` uint8 class map once every input is in, else None.
        """
        if self.layout is None:
            return class_map(probabilities, self.size)
        y, x = self.layout.origins[number]
        th, tw = self.layout.tile
        if probabilities.shape[:2] != (th, tw):
            # A model whose output is smaller than its input (valid convolutions) is
            # stretched over its tile, as resize mode stretches it over the image.
            import cv2

            probabilities = cv2.resize(probabilities, (tw, th), interpolation=cv2.INTER_LINEAR
                                       ).reshape(th, tw, probabilities.shape[-1])
        with self._lock:
            if self._sums is None:
                self._sums = np.zeros((*self.layout.padded, probabilities.shape[-1]),
                                      np.float32)
            self._sums[y:y + th, x:x + tw] += probabilities
            self.remaining -= 1
            if self.remaining:
                return None
        (top, left), (height, width) = self.layout.offset, self.size
        return self._sums[top:top + height, left:left + width].argmax(-1).astype(np.uint8)


def segment_image(model, image, *, mode="resize", tile_overlap=0.25, batch_size=8,
                  image_size=None):
    """The class map of one image of any size.

    Args:
        model: a Keras segmentation model: `(batch, h, w, channels)` -> `(batch, h', w', K)`
            class probabilities.
        image: `(height, width, 3)` uint8 RGB.
        mode: "resize", "tile" or "auto" (see the module docstring).
        tile_overlap: fraction of a tile's side shared with its neighbour, in `[0, 1)`.
        batch_size: tiles per predict call.
        image_size: input side for a model that takes any input size.

    Returns:
        `(height, width)` uint8 class ids.
    """
    image = np.asarray(image, np.uint8)
    size = model_input_size(model, image_size)
    inputs, layout = model_inputs(image, size, int(model.input_shape[-1]), mode, tile_overlap)
    stitcher = MaskStitcher(image.shape[:2], layout)
    for start in range(0, len(inputs), int(batch_size)):
        outputs = np.asarray(model.predict_on_batch(inputs[start:start + batch_size]))
        for number, probabilities in enumerate(outputs, start):
            mask = stitcher.add(number, probabilities)
    return mask


def class_counts(mask, num_classes):
    """Pixels of each class id `0..num_classes - 1` in a `(height, width)` uint8 class map,
    as a list of ints. One comparison per class when there are few: `np.bincount` first
    widens the map to 64-bit ints, which costs several times more for the handful of
    classes of a typical model."""
    if num_classes <= 16:
        return [int(np.count_nonzero(mask == c)) for c in range(num_classes)]
    return np.bincount(mask.ravel(), minlength=num_classes)[:num_classes].tolist()
