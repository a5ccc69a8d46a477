"""Anchor boxes: the Faster R-CNN RPN's 9 per location and SSD's default boxes."""

import math

from keras import ops
from keras.utils.bounding_boxes import convert_format


def rpn_anchors(feature_shape, stride=16, scales=(128, 256, 512), aspect_ratios=(0.5, 1.0, 2.0),
                dtype="float32"):
    """The Region Proposal Network's anchors, xyxy in input-image pixels.

    Ren et al., "Faster R-CNN" (2015, sec. 3.1.1): at each feature-map cell, k = 9 anchors of
    areas 128², 256², 512² and aspect ratios 1:1, 1:2, 2:1, centred on the cell, on a stride-16
    grid (VGG16 conv5_3). An anchor of scale s and ratio r = height / width has
    `width = s / sqrt(r)`, `height = s * sqrt(r)` (area s²). Centres are at
    `((col + 0.5) * stride, (row + 0.5) * stride)`.

    Args:
        feature_shape: `(height, width)` of the feature map.
        stride: input pixels per feature-map cell.
        scales: square roots of the anchor areas.
        aspect_ratios: height / width ratios.

    Returns:
        `(height * width * len(aspect_ratios) * len(scales), 4)`, ordered by row, column,
        ratio, then scale (the layout of a `(h, w, k * 4)` regression head reshaped).
    """
    height, width = int(feature_shape[0]), int(feature_shape[1])
    ratios = ops.convert_to_tensor(aspect_ratios, dtype)
    scales = ops.convert_to_tensor(scales, dtype)
    ws = ops.reshape(scales[None, :] / ops.sqrt(ratios)[:, None], (-1,))
    hs = ops.reshape(scales[None, :] * ops.sqrt(ratios)[:, None], (-1,))
    return _tile(ops.stack([ws, hs], axis=-1), height, width, float(stride), float(stride),
                 dtype)


def _tile(wh, height, width, step_y, step_x, dtype):
    """`(height * width * k, 4)` xyxy boxes of sizes `wh (k, 2)` centred on every cell."""
    ys = (ops.arange(height, dtype=dtype) + 0.5) * step_y
    xs = (ops.arange(width, dtype=dtype) + 0.5) * step_x
    cy, cx = ops.meshgrid(ys, xs, indexing="ij")
    k = wh.shape[0]
    centres = ops.broadcast_to(ops.stack([cx, cy], axis=-1)[:, :, None, :], (height, width, k, 2))
    sizes = ops.broadcast_to(wh[None, None], (height, width, k, 2))
    boxes = ops.reshape(ops.concatenate([centres, sizes], axis=-1), (-1, 4))
    return convert_format(boxes, source="center_xywh", target="xyxy", dtype=dtype)


def ssd_scales(num_maps, s_min=0.2, s_max=0.9, first=None):
    """SSD's box scales, Liu et al. 2016 eq. 4: `s_k = s_min + (s_max - s_min)(k - 1)/(m - 1)`.

    Args:
        num_maps: m, the number of feature maps.
        s_min, s_max: the smallest and largest scale (0.2 and 0.9 in the paper).
        first: when given, the first map gets this scale and the formula spans the other
            m - 1 maps (the reference implementation gives conv4_3 0.1 on SSD300).

    Returns:
        m + 1 scales; the last is the extrapolated s_{m+1} used by the last map's extra box.
    """
    m = num_maps if first is None else num_maps - 1
    step = (s_max - s_min) / (m - 1)
    scales = [s_min + step * k for k in range(m + 1)]
    return ([first] if first is not None else []) + scales


# The reference Caffe implementation's construction (weiliu89/caffe, examples/ssd/
# ssd_pascal.py): sizes in pixels, min_size/max_size per map, and steps. It departs from the
# paper's eq. 4 in two documented ways: conv4_3 gets its own smaller scale (0.1 on SSD300),
# and the other scales advance in whole percents, floor((s_max - s_min) / (m - 2)):
# SSD300 uses 0.1, then 0.20, 0.37, 0.54, 0.71, 0.88 (step 17) and 1.05 as s_{m+1};
# SSD512 uses 0.07, then 0.15 .. 0.90 in steps of 15 (and 1.05), as the SSD512 ports of it.
# Box counts per location follow from the ratios: 1 (s_k) + 1 (sqrt(s_k s_k+1)) + 2 per
# extra ratio r (r and 1/r): 4, 6, 6, 6, 4, 4 on SSD300 -> 8,732 boxes.
SSD300 = {
    "image_size": 300,
    "feature_map_sizes": (38, 19, 10, 5, 3, 1),
    "steps": (8, 16, 32, 64, 100, 300),
    "min_sizes": (30.0, 60.0, 111.0, 162.0, 213.0, 264.0),
    "max_sizes": (60.0, 111.0, 162.0, 213.0, 264.0, 315.0),
    "aspect_ratios": ((2,), (2, 3), (2, 3), (2, 3), (2,), (2,)),
}
SSD512 = {
    "image_size": 512,
    "feature_map_sizes": (64, 32, 16, 8, 4, 2, 1),
    "steps": (8, 16, 32, 64, 128, 256, 512),
    "min_sizes": (35.84, 76.8, 153.6, 230.4, 307.2, 384.0, 460.8),
    "max_sizes": (76.8, 153.6, 230.4, 307.2, 384.0, 460.8, 537.6),
    "aspect_ratios": ((2,), (2, 3), (2, 3), (2, 3), (2, 3), (2,), (2,)),
}


def boxes_per_location(aspect_ratios):
    """Default boxes per cell for each map: 2 + 2 * (number of extra ratios)."""
    return tuple(2 + 2 * len(r) for r in aspect_ratios)


def ssd_default_boxes(image_size, feature_map_sizes, steps, min_sizes, max_sizes,
                      aspect_ratios, clip=False, dtype="float32"):
    """SSD default boxes, xyxy in input-image pixels.

    Liu et al., "SSD: Single Shot MultiBox Detector", ECCV 2016, sec. 2.2: on map k, boxes
    centred at `((j + 0.5) * step, (i + 0.5) * step)`, one of size `min_size` (scale s_k),
    one of size `sqrt(min_size * max_size)` (s'_k = sqrt(s_k s_{k+1})), and for every extra
    ratio r, `min_size * sqrt(r)` wide and `min_size / sqrt(r)` high, and its transpose
    (ratios r and 1/r). `SSD300` and `SSD512` hold the paper's configurations:
    `ssd_default_boxes(**SSD300)` gives 8,732 boxes and `ssd_default_boxes(**SSD512)` 24,564.

    Args:
        image_size: input side in pixels (square inputs).
        feature_map_sizes: side of each square feature map.
        steps: pixels per cell of each map.
        min_sizes, max_sizes: per map, s_k and s_{k+1} times the image size.
        aspect_ratios: per map, the extra ratios (> 1) besides 1.
        clip: clip boxes to the image.

    Returns:
        `(num_boxes, 4)`, ordered by map, row, column, then box (min, sqrt(min*max),
        r, 1/r for each ratio), the layout of the concatenated reshaped SSD heads.
    """
    levels = []
    for size, step, lo, hi, ratios in zip(feature_map_sizes, steps, min_sizes, max_sizes,
                                          aspect_ratios):
        sizes = [(lo, lo), (math.sqrt(lo * hi),) * 2]
        for r in ratios:
            sizes += [(lo * math.sqrt(r), lo / math.sqrt(r)), (lo / math.sqrt(r), lo * math.sqrt(r))]
        wh = ops.convert_to_tensor(sizes, dtype)
        levels.append(_tile(wh, size, size, float(step), float(step), dtype))
    boxes = ops.concatenate(levels, axis=0)
    if clip:
        boxes = ops.clip(boxes, 0.0, float(image_size))
    return boxes
