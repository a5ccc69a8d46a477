"""COCO mask encodings without pycocotools: run-length (RLE) and polygons.

COCO RLE stores a binary mask of shape `(height, width)` flattened in column-major
(Fortran) order as alternating run lengths, starting with a run of zeros (which may
be 0). "Uncompressed" RLE keeps `counts` as a list of ints (COCO uses it for
`iscrowd=1`); "compressed" RLE packs the counts into an ASCII string (the
`rleToString` scheme of pycocotools' maskApi.c: counts after the second are stored as
differences to the count two places earlier, in 5-bit groups with a continuation bit,
offset by 48).

Polygons are lists `[x0, y0, x1, y1, ...]` in continuous pixel coordinates (pixel `i`
covers `[i, i + 1)`); an object may have several. They are rasterized with OpenCV's
`fillPoly` (supersampled), which agrees with pycocotools' rasterizer up to a few
boundary pixels. Polygons cannot represent holes: `mask_to_polygons` keeps outer
contours only.
"""

import cv2
import numpy as np


def rle_decode(rle):
    """Decodes a COCO RLE dict `{"size": [h, w], "counts": list | str | bytes}`.

    Returns:
        A `uint8` array of shape `(h, w)` with values 0/1.

    Raises:
        ValueError: counts that do not add up to `h * w`.
    """
    height, width = (int(v) for v in rle["size"])
    counts = rle["counts"]
    if isinstance(counts, (str, bytes)):
        counts = string_to_counts(counts)
    counts = np.asarray(counts, dtype=np.int64)
    if counts.size and counts.min() < 0:
        raise ValueError("RLE counts must be non-negative")
    if counts.sum() != height * width:
        raise ValueError(f"RLE counts sum to {int(counts.sum())}, expected {height}x{width} = "
                         f"{height * width}")
    values = np.zeros(counts.size, dtype=np.uint8)
    values[1::2] = 1
    flat = np.repeat(values, counts)
    return flat.reshape((width, height)).T.copy()


def rle_encode(mask, compressed=True):
    """Encodes a binary `(h, w)` mask as COCO RLE (compressed string or a counts list)."""
    mask = np.asarray(mask)
    height, width = mask.shape
    flat = (mask.T.reshape(-1) > 0).astype(np.int8)
    # Run boundaries; COCO's first run counts zeros, so a mask starting with 1 gets a 0.
    change = np.flatnonzero(np.diff(flat)) + 1
    edges = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(edges).tolist()
    if flat.size and flat[0] == 1:
        counts = [0] + counts
    if not flat.size:
        counts = [0]
    return {"size": [int(height), int(width)],
            "counts": counts_to_string(counts) if compressed else [int(c) for c in counts]}


def rle_encode_region(mask, top, left, size, compressed=True):
    """COCO RLE of a `size = (height, width)` image that is `mask` at `(top, left)` and 0
    elsewhere, in time proportional to `mask`'s area, not the image's.

    Args:
        mask: `(h, w)` binary array; it must lie inside the image.
        top, left: where its first row and column lie in the image.
        size: `(height, width)` of the image.

    Returns:
        The same dict as `rle_encode` of the full image.
    """
    height, width = (int(v) for v in size)
    crop = np.asarray(mask) > 0
    h, w = crop.shape
    top, left = int(top), int(left)
    if top < 0 or left < 0 or top + h > height or left + w > width:
        raise ValueError(f"a {h}x{w} mask at (top, left) = ({top}, {left}) leaves the "
                         f"{height}x{width} image")
    # Columns padded with a 0 above and below, so runs cannot cross columns here...
    padded = np.zeros((w, h + 2), np.int8)
    padded[:, 1:-1] = crop.T
    change = np.flatnonzero(np.diff(padded.reshape(-1)))
    column, row = np.divmod(change, h + 2)
    # ... then at their image positions (column-major); a run that ends at an image's
    # bottom row and one that starts at the next column's top are one run.
    edges = (left + column) * height + top + row
    starts, ends = edges[0::2], edges[1::2]
    joined = np.flatnonzero(starts[1:] == ends[:-1])
    starts, ends = np.delete(starts, joined + 1), np.delete(ends, joined)
    bounds = np.concatenate([[0], np.stack([starts, ends], axis=1).reshape(-1),
                             [height * width]])
    counts = np.diff(bounds).tolist()
    if len(counts) > 1 and counts[-1] == 0:  # a last run of ones: no empty zero run after it
        counts.pop()
    return {"size": [height, width],
            "counts": counts_to_string(counts) if compressed else [int(c) for c in counts]}


def counts_to_string(counts):
    """Packs RLE counts into COCO's compressed ASCII form (maskApi.c `rleToString`)."""
    chars = []
    for i, count in enumerate(counts):
        x = int(count) - (int(counts[i - 2]) if i > 2 else 0)
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = (x != -1) if (c & 0x10) else (x != 0)
            if more:
                c |= 0x20
            chars.append(chr(c + 48))
    return "".join(chars)


def string_to_counts(text):
    """Unpacks COCO's compressed RLE string into counts (maskApi.c `rleFrString`)."""
    if isinstance(text, bytes):
        text = text.decode("ascii")
    counts = []
    p = 0
    while p < len(text):
        x = k = 0
        more = True
        while more:
            if p >= len(text):
                raise ValueError("compressed RLE string ends inside a number")
            c = ord(text[p]) - 48
            if not 0 <= c < 64:
                raise ValueError(f"invalid character {text[p]!r} in compressed RLE")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def polygons_to_mask(polygons, height, width):
    """Rasterizes COCO polygons (a list of flat `[x0, y0, ...]` lists) to a 0/1 `(h, w)` mask.

    A pixel is in when its centre is inside a polygon (pycocotools' rule). OpenCV's
    `fillPoly` also paints every pixel the outline touches, so we fill at 5x resolution
    over the polygon's box and sample the sub-pixel at each pixel centre, which brings
    the outline error down to a fifth of a pixel.
    """
    mask = np.zeros((height, width), dtype=np.uint8)
    scale, shift = _SUPERSAMPLE, 3
    for polygon in polygons:
        points = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
        if len(points) < 3 or not np.isfinite(points).all():
            continue
        x0, y0 = np.maximum(np.floor(points.min(axis=0)).astype(int), 0)
        x1 = min(int(np.ceil(points[:, 0].max())), width)
        y1 = min(int(np.ceil(points[:, 1].max())), height)
        if x1 <= x0 or y1 <= y0:
            continue
        canvas = np.zeros(((y1 - y0) * scale, (x1 - x0) * scale), dtype=np.uint8)
        # Sub-pixel centres are integers in OpenCV's convention, hence the -0.5.
        ring = (points - [x0, y0]) * scale - 0.5
        cv2.fillPoly(canvas, [np.round(ring * (1 << shift)).astype(np.int32)], 1,
                     lineType=cv2.LINE_8, shift=shift)
        mask[y0:y1, x0:x1] |= canvas[scale // 2::scale, scale // 2::scale]
    return mask


_SUPERSAMPLE = 5


def mask_to_polygons(mask):
    """Outer contours of a binary mask as COCO polygons (flat lists, at least 3 points each).

    The contour runs through the centres of the boundary pixels; `polygons_to_mask` of
    the result gives back the mask exactly for shapes without holes.
    """
    binary = (np.asarray(mask) > 0).astype(np.uint8)
    contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polygons = []
    for contour in contours:
        points = contour.reshape(-1, 2).astype(np.float64) + 0.5
        if len(points) < 3:
            # A 1- or 2-pixel sliver: make a degenerate triangle fillPoly still paints.
            points = np.concatenate([points, points[-1:], points[:1]])[:3]
        polygons.append([round(float(v), 2) for v in points.reshape(-1)])
    return polygons


def segmentation_to_mask(segmentation, height, width):
    """Any COCO `segmentation` field (polygons, RLE dict, or a list of RLE dicts) -> 0/1 mask."""
    if isinstance(segmentation, dict):
        return rle_decode(segmentation)
    if isinstance(segmentation, list):
        if segmentation and isinstance(segmentation[0], dict):
            mask = np.zeros((height, width), dtype=np.uint8)
            for part in segmentation:
                mask |= rle_decode(part)
            return mask
        return polygons_to_mask(segmentation, height, width)
    raise ValueError(f"unknown segmentation type {type(segmentation).__name__}")


def check_segmentation(segmentation, height, width):
    """Checks a COCO `segmentation` field against its image size without rasterizing it.

    Polygons must be flat lists of an even number of finite numbers; polygons of fewer
    than 3 points are left out (pycocotools cannot rasterize them either). RLE dicts must
    have `size == [height, width]` and counts (a list of non-negative ints, or a
    compressed string) that add up to `height * width`.

    Returns:
        The segmentation to decode (polygons of fewer than 3 points removed), or None when
        nothing is left (an empty list, or only degenerate polygons).

    Raises:
        ValueError: a malformed field, saying what was received.
    """
    if isinstance(segmentation, dict):
        _check_rle(segmentation, height, width)
        return segmentation
    if not isinstance(segmentation, list):
        raise ValueError("segmentation must be a list of polygons, an RLE dict or a list of "
                         f"RLE dicts. Received: {type(segmentation).__name__}")
    if segmentation and all(isinstance(part, dict) for part in segmentation):
        for part in segmentation:
            _check_rle(part, height, width)
        return segmentation
    polygons = []
    for k, polygon in enumerate(segmentation):
        if not isinstance(polygon, (list, tuple)):
            raise ValueError(f"polygon {k} is not a list of coordinates. "
                             f"Received: {type(polygon).__name__}")
        try:
            points = np.asarray(polygon, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"polygon {k} is not a flat list of numbers") from None
        if points.ndim != 1 or len(points) % 2 or not np.isfinite(points).all():
            raise ValueError(f"polygon {k} must be a flat list [x0, y0, x1, y1, ...] of an "
                             f"even number of finite numbers. Received: {len(points)} values")
        if len(points) >= 6:
            polygons.append(polygon)
    return polygons or None


def _check_rle(rle, height, width):
    size = rle.get("size")
    if not isinstance(size, (list, tuple)) or len(size) != 2:
        raise ValueError(f"RLE size must be [height, width]. Received: size={size!r}")
    if [int(v) for v in size] != [int(height), int(width)]:
        raise ValueError(f"RLE size {list(size)} differs from the image's "
                         f"[{int(height)}, {int(width)}] ([height, width])")
    counts = rle.get("counts")
    if isinstance(counts, (str, bytes)):
        counts = string_to_counts(counts)
    elif not isinstance(counts, list):
        raise ValueError("RLE counts must be a list of ints or a compressed string. "
                         f"Received: {type(counts).__name__}")
    counts = np.asarray(counts, dtype=np.int64)
    if counts.size and counts.min() < 0:
        raise ValueError("RLE counts must be non-negative")
    if int(counts.sum()) != int(height) * int(width):
        raise ValueError(f"RLE counts sum to {int(counts.sum())}, not height x width = "
                         f"{int(height) * int(width)}")


def mask_bbox(mask):
    """Tight `[x0, y0, x1, y1]` (pixel edges) of the non-zero pixels, or None if empty."""
    ys, xs = np.nonzero(mask)
    if not len(xs):
        return None
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]
