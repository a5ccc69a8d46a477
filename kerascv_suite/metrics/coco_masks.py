"""COCO instance masks as run sets, and their IoU, for `coco_evaluate(..., iou_type="segm")`.

A *run set* holds many binary masks at once as their foreground runs: half-open intervals
`[start, end)` of the column-major (Fortran) flattened mask, which is how COCO RLE counts
pixels. Everything is vectorized over all masks of a dataset in numpy; no mask is decoded to
pixels.

The encodings follow pycocotools' maskApi.c so that the masks are pixel-identical:

* compressed RLE strings are unpacked as `rleFrString` (5-bit groups, continuation bit,
  counts after the second stored as differences to the count two places earlier);
* polygons are rasterized as `rleFrPoly`: vertices scaled by 5 and rounded, edges walked
  point by point, x-boundary crossings taken at pixel centres and turned into toggle
  positions (a position toggled an even number of times cancels, as the C code's merging of
  zero-length runs does); the parts of one object are united as `rleMerge`;
* a polygon list whose first polygon has fewer than 6 numbers is rejected (pycocotools'
  `frPyObjects` fails on it too);
* the IoU of a detection and a ground truth is `intersection / union`, or
  `intersection / detection area` for a crowd ground truth (`rleIou`), 0 without overlap.
"""

from __future__ import annotations

import dataclasses

import numpy as np

_SCALE = 5.0
_CHUNK = 1024  # masks per vectorized encoding step


@dataclasses.dataclass
class RunSet:
    """Foreground runs of `n` masks.

    Attributes:
        starts, ends: `(num_runs,)` int64 run bounds in each mask's column-major index,
            sorted by mask, then by start; runs of one mask are disjoint.
        first_run, num_runs: `(n,)` where each mask's runs begin in `starts`, and how many.
        area: `(n,)` int64 foreground pixel counts.
        height, width: `(n,)` mask sizes.
        box: `(n, 4)` int64 tight `[col_min, col_max, row_min, row_max]` (inclusive); -1 rows
            for empty masks.
    """

    starts: np.ndarray
    ends: np.ndarray
    first_run: np.ndarray
    num_runs: np.ndarray
    area: np.ndarray
    height: np.ndarray
    width: np.ndarray
    box: np.ndarray


def _run_set(starts, ends, owner, height, width, boxes=True):
    """A `RunSet` from unsorted runs with their mask index; empty runs are dropped.

    `boxes=False` skips the boxes (left at -1) of intermediate sets that are merged later.
    """
    n = len(height)
    keep = ends > starts
    starts, ends, owner = starts[keep], ends[keep], owner[keep]
    key = owner * (int(ends.max(initial=0)) + 1) + starts
    if len(key) > 1 and not (key[1:] > key[:-1]).all():
        order = np.argsort(key, kind="stable")
        starts, ends, owner = starts[order], ends[order], owner[order]
    num_runs = np.bincount(owner, minlength=n).astype(np.int64)
    first_run = np.concatenate([[0], np.cumsum(num_runs)[:-1]]).astype(np.int64)
    area = np.bincount(owner, weights=ends - starts, minlength=n).astype(np.int64)
    box = np.full((n, 4), -1, np.int64)
    if len(starts) and boxes:
        h = height[owner]
        col_s, col_e = starts // h, (ends - 1) // h
        same = col_s == col_e
        row_s = np.where(same, starts % h, 0)
        row_e = np.where(same, (ends - 1) % h, h - 1)
        present = num_runs > 0
        at = first_run[present]
        box[present, 0] = np.minimum.reduceat(col_s, at)
        box[present, 1] = np.maximum.reduceat(col_e, at)
        box[present, 2] = np.minimum.reduceat(row_s, at)
        box[present, 3] = np.maximum.reduceat(row_e, at)
    return RunSet(starts, ends, first_run, num_runs, area, np.asarray(height, np.int64),
                  np.asarray(width, np.int64), box)


def _counts_to_runs(counts, owner, height, width, what):
    """Runs from RLE counts `(total,)` with their mask index `(total,)` (sorted by mask)."""
    n = len(height)
    counts = np.asarray(counts, np.int64)
    if counts.size and counts.min() < 0:
        raise ValueError(f"Some {what} RLE counts are negative; RLE counts are run lengths.")
    per_mask = np.bincount(owner, minlength=n)
    first = np.concatenate([[0], np.cumsum(per_mask)[:-1]]).astype(np.int64)
    position = np.cumsum(counts)
    base = (position - counts)[np.minimum(first, max(len(counts) - 1, 0))] if len(counts) \
        else np.zeros(n, np.int64)
    base = np.where(per_mask > 0, base, 0)
    position = position - base[owner]
    totals = np.bincount(owner, weights=counts, minlength=n).astype(np.int64)
    bad = totals != height * width
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"A {what} RLE's counts sum to {totals[i]}, but its size "
                         f"{int(height[i])}x{int(width[i])} has {int(height[i] * width[i])} "
                         "pixels; the counts must cover the whole mask (column-major).")
    index_in_mask = np.arange(len(counts)) - first[owner]
    ones = index_in_mask % 2 == 1
    return _run_set(position[ones] - counts[ones], position[ones], owner[ones], height, width,
                    boxes=False)


def _unpack_strings(strings, what):
    """Vectorized `rleFrString`: counts `(total,)` and their mask index for many strings."""
    data = [s.encode("ascii") if isinstance(s, str) else bytes(s) for s in strings]
    lengths = np.array([len(s) for s in data], np.int64)
    chars = np.frombuffer(b"".join(data), np.uint8).astype(np.int64) - 48
    if ((chars < 0) | (chars >= 64)).any():
        raise ValueError(f"A {what} compressed RLE string holds characters outside '0'..'o'.")
    last = (chars & 0x20) == 0  # the last character of each number
    string_end = np.cumsum(lengths) - 1
    if (~last[string_end[lengths > 0]]).any():
        raise ValueError(f"A {what} compressed RLE string ends inside a number.")
    number_first = np.concatenate([[0], np.flatnonzero(last)[:-1] + 1]).astype(np.int64)
    number_of_char = np.cumsum(last) - last
    k = np.arange(len(chars)) - number_first[number_of_char]
    values = np.add.reduceat((chars & 0x1F) << (5 * k), number_first) if len(chars) \
        else np.zeros(0, np.int64)
    last_char = np.flatnonzero(last)
    negative = (chars[last_char] & 0x10) != 0
    values = values - np.where(negative, np.left_shift(1, 5 * (k[last_char] + 1)), 0)
    numbers_per_string = np.bincount(
        np.repeat(np.arange(len(data)), lengths)[last_char], minlength=len(data))
    owner = np.repeat(np.arange(len(data)), numbers_per_string)
    first = np.concatenate([[0], np.cumsum(numbers_per_string)[:-1]]).astype(np.int64)
    index = np.arange(len(values)) - first[owner]
    # counts[i] = values[i] + counts[i - 2] for i > 2: a running sum along each parity chain,
    # the even chain starting at index 2.
    odd = index % 2 == 1
    even = (index % 2 == 0) & (index >= 2)
    counts = values.copy()
    for chain in (odd, even):
        running = np.cumsum(np.where(chain, values, 0))
        exclusive = running - np.where(chain, values, 0)
        base = exclusive[np.minimum(first, max(len(values) - 1, 0))] if len(values) else first
        counts = np.where(chain, running - base[owner], counts)
    return counts, owner


def _polygon_toggles(coords, height, width):
    """Vectorized `rleFrPoly` up to its toggle positions.

    Args:
        coords: list of flat `[x0, y0, x1, y1, ...]` polygons.
        height, width: `(P,)` the mask size of each polygon.

    Returns:
        `(positions, polygon)`: column-major toggle positions and their polygon index.
    """
    num_points = np.array([len(c) // 2 for c in coords], np.int64)
    flat = np.concatenate([np.asarray(c, np.float64)[:2 * k] for c, k in zip(coords, num_points)]
                          ) if len(coords) else np.zeros(0)
    xy = flat.reshape(-1, 2)
    x = np.trunc(_SCALE * xy[:, 0] + .5).astype(np.int64)
    y = np.trunc(_SCALE * xy[:, 1] + .5).astype(np.int64)
    polygon_of = np.repeat(np.arange(len(coords)), num_points)
    first = np.concatenate([[0], np.cumsum(num_points)[:-1]]).astype(np.int64)
    following = np.arange(len(x)) + 1
    closing = following == (first + num_points)[polygon_of]
    following[closing] = first[polygon_of[closing]]
    xs, ys, xe, ye = x, y, x[following], y[following]
    dx, dy = np.abs(xe - xs), np.abs(ys - ye)
    major = dx >= dy
    flip = (major & (xs > xe)) | (~major & (ys > ye))
    xs, xe = np.where(flip, xe, xs), np.where(flip, xs, xe)
    ys, ye = np.where(flip, ye, ys), np.where(flip, ys, ye)
    steps = np.maximum(dx, dy)
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = np.where(major, (ye - ys) / np.where(dx > 0, dx, 1).astype(np.float64),
                         (xe - xs) / np.where(dy > 0, dy, 1).astype(np.float64))
    edge_polygon = polygon_of
    xs_f, ys_f = xs.astype(np.float64), ys.astype(np.float64)

    def along(e, t):
        """The C loop's point `t` (after the flip swap) of edges `e`: `(u, v)`."""
        offset = np.trunc(np.where(major[e], ys_f[e], xs_f[e]) + slope[e] * t + .5
                          ).astype(np.int64)
        return (np.where(major[e], t + xs[e], offset), np.where(major[e], offset, t + ys[e]))

    # Consecutive points of one edge differ by at most one sub-column, so a crossing between
    # t and t + 1 is at u' = min(u(t), u(t + 1)) whatever the walking direction, and only
    # those at a pixel centre (u' = 5 * column + 2) count. On a major edge u(t) = xs + t:
    # those t are found directly instead of walking the edge.
    major_edges = np.flatnonzero(major & (steps > 0))
    w_edge = width[edge_polygon].astype(np.int64)
    first_t = np.mod(2 - xs[major_edges], 5)
    first_t = np.maximum(first_t, first_t + 5 * np.ceil(
        (2 - xs[major_edges] - first_t) / 5).astype(np.int64))
    last_t = np.minimum(steps[major_edges] - 1, 5 * w_edge[major_edges] - 3 - xs[major_edges])
    count = np.maximum((last_t - first_t) // 5 + 1, 0)
    e_major = np.repeat(major_edges, count)
    k = np.arange(len(e_major)) - np.repeat(np.cumsum(count) - count, count)
    t_major = np.repeat(first_t, count) + 5 * k
    ys_e, slope_e = ys_f[e_major], slope[e_major]
    v0 = np.trunc(ys_e + slope_e * t_major + .5).astype(np.int64)
    v1 = np.trunc(ys_e + slope_e * (t_major + 1) + .5).astype(np.int64)
    cross_u, cross_v, cross_e = [t_major + xs[e_major]], [np.minimum(v0, v1)], [e_major]
    # Minor edges are walked point by point.
    minor_edges = np.flatnonzero(~major)
    points = steps[minor_edges] + 1
    e_minor = np.repeat(minor_edges, points)
    t_minor = np.arange(len(e_minor)) - np.repeat(np.cumsum(points) - points, points)
    u_minor = np.trunc(xs_f[e_minor] + slope[e_minor] * t_minor + .5).astype(np.int64)
    moved = np.flatnonzero((u_minor[1:] != u_minor[:-1]) & (e_minor[1:] == e_minor[:-1]))
    cross_u.append(np.minimum(u_minor[moved], u_minor[moved + 1]))
    cross_v.append(t_minor[moved] + ys[e_minor[moved]])  # v = ys + t rises along the edge
    cross_e.append(e_minor[moved])
    # Between edges: the last point of one edge and the first of the next (they differ
    # only where truncation toward zero moved a negative coordinate), in the C order.
    joined = np.flatnonzero(np.arange(len(x)) != first[polygon_of])
    before = joined - 1
    u_prev, v_prev = along(before, np.where(flip[before], 0, steps[before]))
    u_cur, v_cur = along(joined, np.where(flip[joined], steps[joined], 0))
    moved = u_prev != u_cur
    cross_u.append(np.where(u_cur < u_prev, u_cur, u_cur - 1)[moved])
    cross_v.append(np.minimum(v_cur, v_prev)[moved])
    cross_e.append(joined[moved])
    u, v, e = (np.concatenate(c) for c in (cross_u, cross_v, cross_e))
    xd = (u.astype(np.float64) + .5) / _SCALE - .5
    h = height[edge_polygon[e]].astype(np.float64)
    w = width[edge_polygon[e]].astype(np.float64)
    ok = (np.floor(xd) == xd) & (xd >= 0) & (xd <= w - 1)
    xd, v, h, e = xd[ok], v[ok], h[ok], e[ok]
    yd = (v.astype(np.float64) + .5) / _SCALE - .5
    yd = np.ceil(np.clip(yd, 0, h))
    positions = xd.astype(np.int64) * h.astype(np.int64) + yd.astype(np.int64)
    return positions, edge_polygon[e]


def _polygon_runs(coords, owner, height, width, num_masks):
    """Runs of the union of each mask's polygons; height, width `(num_masks,)`."""
    poly_h, poly_w = height[owner], width[owner]
    positions, polygon = _polygon_toggles(coords, poly_h, poly_w)
    # A position toggled an odd number of times toggles; the rest cancel.
    order = np.argsort(polygon * (int(positions.max(initial=0)) + 1) + positions)
    positions, polygon = positions[order], polygon[order]
    if len(positions):
        new = np.concatenate([[True], (positions[1:] != positions[:-1])
                              | (polygon[1:] != polygon[:-1])])
        group = np.flatnonzero(new)
        multiplicity = np.diff(np.concatenate([group, [len(positions)]]))
        positions, polygon = positions[group], polygon[group]
        odd = (multiplicity % 2 == 1) & (positions < (poly_h * poly_w)[polygon])
        positions, polygon = positions[odd], polygon[odd]
    count = np.bincount(polygon, minlength=len(coords))
    first = np.concatenate([[0], np.cumsum(count)[:-1]]).astype(np.int64)
    index = np.arange(len(positions)) - first[polygon]
    # An odd number of toggles leaves the last run open to the end of the mask.
    closing = (count % 2 == 1)
    starts = np.concatenate([positions[index % 2 == 0]])
    ends_inner = positions[index % 2 == 1]
    start_polygon = polygon[index % 2 == 0]
    ends = np.empty(len(starts), np.int64)
    is_last_open = closing[start_polygon] & (index[index % 2 == 0] == count[start_polygon] - 1)
    ends[~is_last_open] = ends_inner
    ends[is_last_open] = (poly_h * poly_w)[start_polygon[is_last_open]]
    parts = np.bincount(owner, minlength=num_masks)
    return _union_where_needed(starts, ends, owner[start_polygon], parts, height, width,
                               boxes=False)


def _union_where_needed(starts, ends, owner, parts, height, width, boxes=True):
    """`_union` of the runs of masks made of more than one part; the others pass through."""
    several = (np.bincount(owner, minlength=len(height)) > 0) & (parts > 1)
    if not several.any():
        return _run_set(starts, ends, owner, height, width, boxes)
    merge = several[owner]
    united = _union(starts[merge], ends[merge], owner[merge], height, width)
    run_owner = np.repeat(np.arange(len(height)), united.num_runs)
    return _run_set(np.concatenate([starts[~merge], united.starts]),
                    np.concatenate([ends[~merge], united.ends]),
                    np.concatenate([owner[~merge], run_owner]), height, width, boxes)


def _union(starts, ends, owner, height, width):
    """The `RunSet` of the union of possibly overlapping runs per mask."""
    positions = np.concatenate([starts, ends])
    delta = np.concatenate([np.ones(len(starts), np.int64), -np.ones(len(ends), np.int64)])
    who = np.concatenate([owner, owner])
    order = np.lexsort((delta, positions, who))  # closings first at a shared position
    positions, delta, who = positions[order], delta[order], who[order]
    cover = np.cumsum(delta)
    opening = (delta == 1) & (cover == 1)
    closing = (delta == -1) & (cover == 0)
    return _run_set(positions[opening], positions[closing], who[opening], height, width,
                    boxes=False)


def encode_segmentations(segmentations, heights, widths, what):
    """A `RunSet` of COCO `segmentation` fields: polygons, RLE dicts or lists of RLE dicts.

    Args:
        segmentations: `n` segmentation fields (compressed or uncompressed RLE dicts with
            `size` [h, w] and `counts`; lists of polygons; lists of RLE dicts).
        heights, widths: `(n,)` image sizes for polygons (RLEs carry their own; -1 = unknown).
        what: "ground-truth" or "detection", for error messages.

    Raises:
        ValueError: unreadable fields, polygons on an image without height/width, or RLE
            counts that do not cover their size.
    """
    n = len(segmentations)
    heights = np.asarray(heights, np.int64).copy()
    widths = np.asarray(widths, np.int64).copy()
    strings, string_owner, lists, list_owner, polys, poly_owner = [], [], [], [], [], []
    for i, seg in enumerate(segmentations):
        parts = [seg] if isinstance(seg, dict) else seg
        if not isinstance(parts, (list, tuple)):
            raise ValueError(f"A {what} segmentation must be an RLE dict or a list of polygons "
                             f"or RLE dicts. Received: {type(seg).__name__}")
        if parts and not isinstance(parts[0], dict):
            if heights[i] < 0 or widths[i] < 0:
                raise ValueError(f"A {what} polygon segmentation lies on an image without "
                                 "'height' and 'width'; add them to the image entry.")
            if len(parts[0]) < 6:  # pycocotools fails on these too
                raise ValueError(f"A {what} polygon needs at least 3 points. Received: "
                                 f"{parts[0]!r}")
            polys.extend(parts)
            poly_owner.extend([i] * len(parts))
            continue
        for rle in parts:
            try:
                size, counts = rle["size"], rle["counts"]
                h, w = int(size[0]), int(size[1])
            except (KeyError, TypeError, IndexError, ValueError) as e:
                raise ValueError(f"A {what} RLE needs 'size' [h, w] and 'counts': {e!r}") from e
            if heights[i] >= 0 and (heights[i], widths[i]) != (h, w) and len(parts) > 1:
                raise ValueError(f"The RLE parts of one {what} segmentation differ in size.")
            heights[i], widths[i] = h, w
            if isinstance(counts, (str, bytes)):
                strings.append(counts)
                string_owner.append(i)
            else:
                lists.append(counts)
                list_owner.append(i)
    sets = []
    string_owner = np.asarray(string_owner, np.int64)
    # Chunks keep the working arrays in cache: several times faster on large sets.
    for begin in range(0, len(strings), _CHUNK):
        mask_of = string_owner[begin:begin + _CHUNK]
        counts, index = _unpack_strings(strings[begin:begin + _CHUNK], what)
        sets.append((_counts_to_runs(counts, index, heights[mask_of], widths[mask_of], what),
                     mask_of))
    if lists:
        lengths = np.array([len(c) for c in lists], np.int64)
        counts = np.concatenate([np.asarray(c, np.int64).reshape(-1) for c in lists])
        index = np.repeat(np.arange(len(lists)), lengths)
        sets.append((_counts_to_runs(counts, index, heights[list_owner], widths[list_owner],
                                     what), np.asarray(list_owner, np.int64)))
    starts, ends, owner = [], [], []
    for run_set, mask_of in sets:
        run_owner = np.repeat(np.arange(len(mask_of)), run_set.num_runs)
        starts.append(run_set.starts)
        ends.append(run_set.ends)
        owner.append(mask_of[run_owner])
    poly_owner = np.asarray(poly_owner, np.int64)
    begin = 0
    while begin < len(polys):
        # A chunk ends between masks: the parts of one mask are united together.
        end = int(np.searchsorted(poly_owner, poly_owner[min(begin + _CHUNK, len(polys)) - 1],
                                  side="right"))
        poly_set = _polygon_runs(polys[begin:end], poly_owner[begin:end], heights, widths, n)
        starts.append(poly_set.starts)
        ends.append(poly_set.ends)
        owner.append(np.repeat(np.arange(n), poly_set.num_runs))
        begin = end
    if not starts:
        empty = np.zeros(0, np.int64)
        return _run_set(empty, empty, empty, heights, widths)
    starts, ends, owner = (np.concatenate(v).astype(np.int64) for v in (starts, ends, owner))
    # Objects made of several parts (or mixed encodings) are united.
    parts = np.bincount(np.concatenate([string_owner, list_owner, np.unique(poly_owner)]
                                       ).astype(np.int64), minlength=n)
    return _union_where_needed(starts, ends, owner, parts, heights, widths)


def mask_iou(detections: RunSet, dt_index, ground_truth: RunSet, gt_index, gt_crowd):
    """IoU of detection/ground-truth mask pairs, as pycocotools' `rleIou`.

    Args:
        detections, ground_truth: the run sets.
        dt_index, gt_index: `(P,)` mask indices of each pair; gt_crowd `(P,)` flags.

    Returns:
        `(P,)` float64: `intersection / union`, or `intersection / detection area` for crowd
        ground truth; 0 when the masks do not overlap.

    Raises:
        ValueError: a pair whose mask sizes differ.
    """
    dt_index, gt_index = np.asarray(dt_index, np.int64), np.asarray(gt_index, np.int64)
    out = np.zeros(len(dt_index))
    mismatch = ((detections.height[dt_index] != ground_truth.height[gt_index])
                | (detections.width[dt_index] != ground_truth.width[gt_index]))
    if mismatch.any():
        p = int(np.flatnonzero(mismatch)[0])
        raise ValueError(
            f"A detection mask of size {int(detections.height[dt_index[p]])}x"
            f"{int(detections.width[dt_index[p]])} meets a ground-truth mask of size "
            f"{int(ground_truth.height[gt_index[p]])}x{int(ground_truth.width[gt_index[p]])} "
            "on the same image; encode detections at the image's size.")
    db, gb = detections.box[dt_index], ground_truth.box[gt_index]
    overlap = ((db[:, 0] >= 0) & (gb[:, 0] >= 0) & (db[:, 0] <= gb[:, 1])
               & (gb[:, 0] <= db[:, 1]) & (db[:, 2] <= gb[:, 3]) & (gb[:, 2] <= db[:, 3]))
    pairs = np.flatnonzero(overlap)
    if len(pairs) == 0:
        return out
    d, g = dt_index[pairs], gt_index[pairs]
    # Each detection lives in its own stretch of a global axis, so one searchsorted over all
    # detection runs evaluates every pair's coverage function F_d(x) = pixels of d before x.
    stride = int(max(detections.height.max() * detections.width.max(), 0)) + 1
    lengths = detections.ends - detections.starts
    run_owner = np.repeat(np.arange(len(detections.num_runs)), detections.num_runs)
    global_starts = detections.starts + run_owner * stride
    covered_before = np.cumsum(lengths) - lengths
    queries = ground_truth.num_runs[g]
    pair_first = np.concatenate([[0], np.cumsum(queries)[:-1]]).astype(np.int64)
    query_pair = np.repeat(np.arange(len(pairs)), queries)
    query_run = ground_truth.first_run[g][query_pair] + (np.arange(len(query_pair))
                                                         - pair_first[query_pair])
    offset = d[query_pair] * stride

    def coverage(x):
        k = np.searchsorted(global_starts, x, side="right") - 1
        kk = np.maximum(k, 0)
        value = covered_before[kk] + np.clip(x - global_starts[kk], 0, lengths[kk])
        return np.where(k >= 0, value, 0)

    inside = (coverage(offset + ground_truth.ends[query_run])
              - coverage(offset + ground_truth.starts[query_run]))
    intersection = np.add.reduceat(inside, pair_first)
    area_d, area_g = detections.area[d], ground_truth.area[g]
    union = np.where(np.asarray(gt_crowd, bool)[pairs], area_d, area_d + area_g - intersection)
    with np.errstate(divide="ignore", invalid="ignore"):
        out[pairs] = np.where(intersection > 0, intersection / np.where(union > 0, union, 1),
                              0.0)
    return out
