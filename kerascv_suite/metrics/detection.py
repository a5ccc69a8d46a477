"""Detection metrics: PASCAL VOC average precision and the 12 COCO box and mask statistics.

`coco_evaluate` reproduces pycocotools' `COCOeval` (iouType "bbox" or "segm", default
parameters: IoU thresholds .50:.05:.95, 101 recall points, maxDets 1/10/100, areas
all/small/medium/large) number for number, with its matching rules kept exactly:

* detections of one (image, category) are ranked by a stable sort on `-score` and cut to the
  100 best before matching (ties keep the order of the results file);
* a detection takes the not-yet-matched ground truth with the highest IoU >= threshold, the
  last one on equal IoU; regular ground truth wins over ignored ground truth (crowd boxes and
  boxes outside the area range) whatever the IoUs;
* crowd ground truth may absorb any number of detections, and its IoU is
  `intersection / detection area`;
* unmatched detections outside the area range are ignored;
* per category, detections of all images are ranked by a stable sort on `-score` (image order
  first, as pycocotools concatenates them), precision is made monotone and read at the 101
  recall thresholds; categories without non-ignored ground truth count as -1 and are left
  out of the means.

Where pycocotools loops in Python over (category, area, image, threshold, detection, ground
truth), here the greedy matching runs once per detection *rank* over every (image, category)
group, all thresholds and all area ranges at once in numpy; see `benchmarks/coco_eval.py`.
For "segm" only the IoUs differ: masks stay run-length encoded (`coco_masks`), decoded and
rasterized exactly as pycocotools' maskApi.c; see `benchmarks/coco_eval_segm.py`.
pycocotools is only a test dependency: the tests compare against it on randomized cases.

The VOC functions follow the devkit's `VOCevaldet` / py-faster-rcnn's `voc_eval`: a detection
is a true positive when its best IoU with a same-class box is > 0.5 and that box is neither
`difficult` nor already taken; detections on difficult boxes count as neither.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from kerascv_suite.metrics.coco_masks import encode_segmentations, mask_iou

COCO_STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl",
                   "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")

# COCOeval's Params.setDetParams, computed the same way so the floats are bit-identical.
IOU_THRESHOLDS = np.linspace(.5, 0.95, int(np.round((0.95 - .5) / .05)) + 1, endpoint=True)
RECALL_THRESHOLDS = np.linspace(.0, 1.00, int(np.round((1.00 - .0) / .01)) + 1, endpoint=True)
MAX_DETECTIONS = (1, 10, 100)
AREA_RANGES = ((0 ** 2, 1e5 ** 2), (0 ** 2, 32 ** 2), (32 ** 2, 96 ** 2), (96 ** 2, 1e5 ** 2))
AREA_NAMES = ("all", "small", "medium", "large")

# Groups per vectorized matching chunk: bounds memory at chunk * T * A * max_gt booleans.
_CHUNK = 2048


@dataclasses.dataclass
class COCOResult:
    """The outcome of `coco_evaluate`.

    Attributes:
        stats: the 12 statistics in pycocotools' order (`COCO_STAT_NAMES`); -1 where undefined.
        precision: `(T, R, K, A, M)` interpolated precision (-1 for absent categories), as
            `COCOeval.eval["precision"]`.
        recall: `(T, K, A, M)` recall, as `COCOeval.eval["recall"]`.
        category_ids: the K ground-truth category ids, sorted.
    """

    stats: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    category_ids: list

    def as_dict(self) -> dict:
        """`{"AP": ..., "AP50": ..., ..., "ARl": ...}` with Python floats."""
        return {name: float(v) for name, v in zip(COCO_STAT_NAMES, self.stats)}


# ---------------------------------------------------------------------------------------------
# Parsing and validation of COCO dictionaries.


def _as_bbox_array(items, what):
    try:
        boxes = np.array([item["bbox"] for item in items], dtype=np.float64).reshape(-1, 4)
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"Every {what} needs a 'bbox' [x, y, width, height]: {e!r}") from e
    if len(boxes) and not np.isfinite(boxes).all():
        raise ValueError(f"Some {what} boxes are not finite.")
    return boxes


def _index_of(ids, sorted_ids, what, where):
    ids = np.asarray(ids)
    if len(sorted_ids) == 0:
        pos, bad = np.zeros(len(ids), np.int64), np.ones(len(ids), bool)
    else:
        pos = np.minimum(np.searchsorted(sorted_ids, ids), len(sorted_ids) - 1)
        bad = sorted_ids[pos] != ids
    if np.any(bad):
        unknown = sorted(set(np.asarray(ids)[bad].tolist()))
        raise ValueError(
            f"{where} refer to {what} ids that the ground truth does not define: "
            f"{unknown[:10]}{' ...' if len(unknown) > 10 else ''}. The ground truth defines "
            f"{what} ids {sorted_ids[:10].tolist()}{' ...' if len(sorted_ids) > 10 else ''}; "
            "check the class-id convention (e.g. 0-based vs 1-based) of the detections."
        )
    return pos


def _parse(ground_truth, detections, iou_type="bbox"):
    """Flat arrays of ground truth and detections with image/category indices."""
    if not isinstance(ground_truth, dict) or "images" not in ground_truth:
        raise ValueError("Ground truth must be a COCO dict with 'images', 'annotations' and "
                         "'categories'.")
    if not isinstance(detections, (list, tuple)):
        raise ValueError("Detections must be a list of COCO results "
                         "({'image_id', 'category_id', 'bbox', 'score'}).")
    try:
        image_ids = np.unique(np.array([img["id"] for img in ground_truth["images"]]))
        category_ids = np.unique(np.array([c["id"] for c in ground_truth.get("categories", [])]))
    except (KeyError, TypeError) as e:
        raise ValueError(f"Ground-truth images and categories need an 'id': {e!r}") from e
    if len(category_ids) == 0:
        raise ValueError("The ground truth defines no categories.")
    annotations = ground_truth.get("annotations", [])
    try:
        gt = {
            "image": _index_of([a["image_id"] for a in annotations], image_ids, "image",
                               "Ground-truth annotations"),
            "category": _index_of([a["category_id"] for a in annotations], category_ids,
                                  "category", "Ground-truth annotations"),
            "crowd": np.array([bool(a.get("iscrowd", 0)) for a in annotations], bool),
            "id": np.array([a.get("id", i + 1) for i, a in enumerate(annotations)], np.int64),
        }
        dt = {
            "image": _index_of([d["image_id"] for d in detections], image_ids, "image",
                               "Detections"),
            "category": _index_of([d["category_id"] for d in detections], category_ids,
                                  "category", "Detections"),
            "score": np.array([d["score"] for d in detections], np.float64),
        }
        if iou_type == "segm":
            masks = _parse_masks(ground_truth, annotations, detections, image_ids, gt, dt)
        else:
            masks = None
            gt["box"] = _as_bbox_array(annotations, "ground-truth annotation")
            gt["area"] = np.array([a["area"] if "area" in a else a["bbox"][2] * a["bbox"][3]
                                   for a in annotations], np.float64)
            dt["box"] = _as_bbox_array(detections, "detection")
            # As COCO.loadRes: the area of a box result is width * height.
            dt["area"] = dt["box"][:, 2] * dt["box"][:, 3]
    except KeyError as e:
        raise ValueError(f"Missing field {e} in an annotation or detection.") from e
    return gt, dt, image_ids, category_ids, masks


def _parse_masks(ground_truth, annotations, detections, image_ids, gt, dt):
    """Run sets of the gt and detection masks; sets `area` and a `mask` index in gt and dt."""
    heights = np.full(len(image_ids), -1, np.int64)
    widths = np.full(len(image_ids), -1, np.int64)
    for img in ground_truth["images"]:
        if "height" in img and "width" in img:
            i = int(np.searchsorted(image_ids, img["id"]))
            heights[i], widths[i] = int(img["height"]), int(img["width"])
    try:
        gt_segm = [a["segmentation"] for a in annotations]
        dt_segm = [d["segmentation"] for d in detections]
    except KeyError as e:
        raise ValueError("iou_type='segm' needs a 'segmentation' (polygons or RLE) in every "
                         "ground-truth annotation and detection; one has none.") from e
    gt_masks = encode_segmentations(gt_segm, heights[gt["image"]], widths[gt["image"]],
                                    "ground-truth")
    dt_masks = encode_segmentations(dt_segm, heights[dt["image"]], widths[dt["image"]],
                                    "detection")
    # pycocotools ranks ground truth by its `area` field; absent, the mask area stands in.
    gt["area"] = np.array([a["area"] if "area" in a else gt_masks.area[i]
                           for i, a in enumerate(annotations)], np.float64)
    # COCO.loadRes takes a box result's width * height as its area when the first result
    # has a non-empty 'bbox' (Detectron-style results carry both), else the mask area.
    if detections and len(detections[0].get("bbox", [])) > 0:
        boxes = _as_bbox_array(detections, "detection")
        dt["area"] = boxes[:, 2] * boxes[:, 3]
    else:
        dt["area"] = dt_masks.area.astype(np.float64)
    gt["mask"] = np.arange(len(annotations))
    dt["mask"] = np.arange(len(detections))
    return gt_masks, dt_masks


# ---------------------------------------------------------------------------------------------
# Per-(image, category) greedy matching, vectorized over groups, thresholds and area ranges.


def _box_iou(d, g, crowd):
    """IoU of `(..., D, 4)` detections and `(..., G, 4)` gt xywh boxes as maskApi's bbIou.

    The float operations are those of the C code, in its order, so results are bit-identical.
    """
    dx, dy, dw, dh = (d[..., :, None, i] for i in range(4))
    gx, gy, gw, gh = (g[..., None, :, i] for i in range(4))
    w = np.minimum(dw + dx, gw + gx) - np.maximum(dx, gx)
    h = np.minimum(dh + dy, gh + gy) - np.maximum(dy, gy)
    inter = w * h
    da, ga = dw * dh, gw * gh
    union = np.where(crowd[..., None, :], da, da + ga - inter)
    positive = (w > 0) & (h > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(positive, inter / np.where(positive, union, 1.0), 0.0)


def _last_argmax(values):
    """Index of the LAST maximum along the final axis (pycocotools' `>=` running maximum)."""
    n = values.shape[-1]
    return n - 1 - np.argmax(values[..., ::-1], axis=-1)


def _match_chunk(ious, dt_valid, gt_valid, gt_crowd, gt_ignore, gt_id_nonzero):
    """Greedy COCO matching of one chunk of groups.

    Args:
        ious: `(n, D, G)` IoU of each group's detections (best score first, padded) with its
            ground truth.
        dt_valid: `(n, D)`; groups sorted by decreasing number of detections.
        gt_valid, gt_crowd, gt_id_nonzero: `(n, G)`.
        gt_ignore: `(A, n, G)` ignore flag per area range (crowd or area outside the range).

    Returns:
        matched `(T, A, n, D)` (matched to a ground truth whose id is not 0, pycocotools'
        `dtm != 0`), and on_ignored `(T, A, n, D)` (matched to an ignored ground truth).
    """
    n, num_dt = dt_valid.shape
    num_t, num_a = len(IOU_THRESHOLDS), gt_ignore.shape[0]
    thresholds = np.minimum(IOU_THRESHOLDS, 1 - 1e-10)[:, None, None, None]
    gt_taken = np.zeros((num_t, num_a) + gt_valid.shape, bool)
    matched = np.zeros((num_t, num_a, n, num_dt), bool)
    on_ignored = np.zeros_like(matched)
    per_group = dt_valid.sum(axis=1)
    gt_arange = np.arange(gt_valid.shape[1])
    for d in range(num_dt):
        # Groups are sorted by decreasing detection count, so the active ones are a prefix.
        k = int(np.count_nonzero(per_group > d))
        if k == 0:
            break
        iou = ious[:k, d, :][None, None]  # (1, 1, k, G)
        free = gt_valid[:k] & ~(gt_taken[:, :, :k] & ~gt_crowd[:k])
        candidate = free & (iou >= thresholds)
        ignore = gt_ignore[:, :k][None]
        regular = candidate & ~ignore
        ignored = candidate & ignore
        has_regular = regular.any(axis=-1)
        has_ignored = ignored.any(axis=-1)
        best_regular = _last_argmax(np.where(regular, iou, -1.0))
        best_ignored = _last_argmax(np.where(ignored, iou, -1.0))
        best = np.where(has_regular, best_regular, best_ignored)
        hit = has_regular | has_ignored
        gt_taken[:, :, :k] |= (gt_arange == best[..., None]) & hit[..., None]
        nonzero_id = np.take_along_axis(gt_id_nonzero[:k][None, None], best[..., None],
                                        axis=-1)[..., 0]
        matched[:, :, :k, d] = hit & nonzero_id
        on_ignored[:, :, :k, d] = hit & ~has_regular
    return matched, on_ignored


def _pad_groups(values, starts, counts, order, width, fill):
    """Gathers ragged group rows `values[starts[g]:starts[g]+counts[g]]` into `(n, width, ...)`."""
    n = len(order)
    pos = np.arange(width)
    valid = pos[None, :] < counts[order][:, None]
    index = np.where(valid, starts[order][:, None] + pos[None, :], 0)
    if len(values) == 0:
        out = np.full((n, width) + values.shape[1:], fill, dtype=values.dtype)
    else:
        out = values[index]
        out[~valid] = fill
    return out, valid


def _box_pair_iou(gt, dt):
    """IoU of padded `(n, D)` detection and `(n, G)` gt index blocks, from their boxes."""
    def pair_iou(dt_index, dt_valid, gt_index, gt_valid, crowd):
        return _box_iou(dt["box"][dt_index], gt["box"][gt_index], crowd)

    return pair_iou


def _mask_pair_iou(gt, dt, masks):
    """As `_box_pair_iou`, from the run-length masks (`coco_masks.mask_iou`)."""
    gt_masks, dt_masks = masks

    def pair_iou(dt_index, dt_valid, gt_index, gt_valid, crowd):
        valid = dt_valid[:, :, None] & gt_valid[:, None, :]
        d = np.broadcast_to(dt["mask"][dt_index][:, :, None], valid.shape)[valid]
        g = np.broadcast_to(gt["mask"][gt_index][:, None, :], valid.shape)[valid]
        c = np.broadcast_to(crowd[:, None, :], valid.shape)[valid]
        ious = np.zeros(valid.shape)
        ious[valid] = mask_iou(dt_masks, d, gt_masks, g, c)
        return ious

    return pair_iou


def _match_all(gt, dt, num_groups, pair_iou):
    """Runs the matching for every group; returns per-detection flags `(T, A, num_dt)`.

    `pair_iou(dt_index, dt_valid, gt_index, gt_valid, gt_crowd)` gives the `(n, D, G)` IoUs
    of a chunk's padded index blocks.
    """
    num_t, num_a = len(IOU_THRESHOLDS), len(AREA_RANGES)
    dt_starts = np.searchsorted(dt["group"], np.arange(num_groups))
    dt_counts = np.bincount(dt["group"], minlength=num_groups)
    gt_starts = np.searchsorted(gt["group"], np.arange(num_groups))
    gt_counts = np.bincount(gt["group"], minlength=num_groups)
    matched = np.zeros((num_t, num_a, len(dt["score"])), bool)
    on_ignored = np.zeros_like(matched)
    # Only groups with both detections and ground truth need matching.
    groups = np.nonzero((dt_counts > 0) & (gt_counts > 0))[0]
    groups = groups[np.argsort(-dt_counts[groups], kind="stable")]
    lows = np.array([r[0] for r in AREA_RANGES])[:, None]
    highs = np.array([r[1] for r in AREA_RANGES])[:, None]
    gt_ignore_all = gt["crowd"][None] | (gt["area"][None] < lows) | (gt["area"][None] > highs)
    for begin in range(0, len(groups), _CHUNK):
        order = groups[begin:begin + _CHUNK]
        width_d, width_g = int(dt_counts[order].max()), int(gt_counts[order].max())
        dt_index, dt_valid = _pad_groups(np.arange(len(dt["score"])), dt_starts, dt_counts,
                                         order, width_d, 0)
        gt_index, gt_valid = _pad_groups(np.arange(len(gt["crowd"])), gt_starts, gt_counts,
                                         order, width_g, 0)
        crowd, _ = _pad_groups(gt["crowd"], gt_starts, gt_counts, order, width_g, False)
        nonzero, _ = _pad_groups(gt["id"] != 0, gt_starts, gt_counts, order, width_g, False)
        ignore = np.stack([_pad_groups(gt_ignore_all[a], gt_starts, gt_counts, order,
                                       width_g, True)[0] for a in range(num_a)])
        ious = pair_iou(dt_index, dt_valid, gt_index, gt_valid, crowd)  # (n, D, G)
        m, ig = _match_chunk(ious, dt_valid, gt_valid, crowd, ignore, nonzero)
        rows = dt_starts[order][:, None] + np.arange(width_d)[None, :]
        matched[:, :, rows[dt_valid]] = m[:, :, dt_valid]
        on_ignored[:, :, rows[dt_valid]] = ig[:, :, dt_valid]
    return matched, on_ignored


# ---------------------------------------------------------------------------------------------
# Accumulation and summary.


def _precision_at_recalls(tp, fp, num_positives):
    """Interpolated precision at RECALL_THRESHOLDS and final recall for `(T, nd)` flags."""
    num_t, nd = tp.shape
    tp_sum = np.cumsum(tp, axis=1).astype(float)
    fp_sum = np.cumsum(fp, axis=1).astype(float)
    recall_curve = tp_sum / num_positives
    precision = tp_sum / (fp_sum + tp_sum + np.spacing(1))
    # The precision envelope: the running maximum from the right.
    precision = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]
    q = np.zeros((num_t, len(RECALL_THRESHOLDS)))
    final_recall = recall_curve[:, -1] if nd else np.zeros(num_t)
    for t in range(num_t):
        inds = np.searchsorted(recall_curve[t], RECALL_THRESHOLDS, side="left")
        ok = inds < nd
        q[t, ok] = precision[t, inds[ok]]
    return q, final_recall


def _accumulate(gt, dt, matched, on_ignored, num_categories):
    num_t, num_r = len(IOU_THRESHOLDS), len(RECALL_THRESHOLDS)
    num_a, num_m = len(AREA_RANGES), len(MAX_DETECTIONS)
    precision = -np.ones((num_t, num_r, num_categories, num_a, num_m))
    recall = -np.ones((num_t, num_categories, num_a, num_m))
    lows = np.array([r[0] for r in AREA_RANGES])
    highs = np.array([r[1] for r in AREA_RANGES])
    gt_regular = ~gt["crowd"][None] & (gt["area"][None] >= lows[:, None]) & (
        gt["area"][None] <= highs[:, None])
    positives = np.stack([np.bincount(gt["category"], weights=gt_regular[a],
                                      minlength=num_categories) for a in range(num_a)], axis=1)
    dt_out_of_range = (dt["area"][None] < lows[:, None]) | (dt["area"][None] > highs[:, None])
    # Unmatched detections outside the area range are ignored.
    ignored = on_ignored | (~matched & dt_out_of_range[None])
    tp_all = matched & ~ignored
    fp_all = ~matched & ~ignored
    cat_starts = np.searchsorted(dt["category"], np.arange(num_categories + 1))
    for k in range(num_categories):
        sl = slice(cat_starts[k], cat_starts[k + 1])
        rank, score = dt["rank"][sl], dt["score"][sl]
        for m, max_det in enumerate(MAX_DETECTIONS):
            keep = rank < max_det
            order = np.argsort(-score[keep], kind="mergesort")
            for a in range(num_a):
                if positives[k, a] == 0:
                    continue
                tp = tp_all[:, a, sl][:, keep][:, order]
                fp = fp_all[:, a, sl][:, keep][:, order]
                q, r = _precision_at_recalls(tp, fp, positives[k, a])
                precision[:, :, k, a, m] = q
                recall[:, k, a, m] = r
    return precision, recall


def _summarize(precision, recall):
    def mean(s):
        s = s[s > -1]
        return -1.0 if s.size == 0 else float(np.mean(s))

    def ap(iou=None, area="all", max_det=100):
        s = precision
        if iou is not None:
            s = s[np.where(iou == IOU_THRESHOLDS)[0]]
        return mean(s[:, :, :, AREA_NAMES.index(area), MAX_DETECTIONS.index(max_det)])

    def ar(area="all", max_det=100):
        return mean(recall[:, :, AREA_NAMES.index(area), MAX_DETECTIONS.index(max_det)])

    return np.array([
        ap(), ap(iou=.5), ap(iou=.75), ap(area="small"), ap(area="medium"), ap(area="large"),
        ar(max_det=1), ar(max_det=10), ar(), ar("small"), ar("medium"), ar("large"),
    ])


def coco_evaluate(ground_truth: dict, detections: list, iou_type: str = "bbox") -> COCOResult:
    """COCO box or mask evaluation, equal to pycocotools' `COCOeval(gt, dt, iou_type)` stats.

    Args:
        ground_truth: a COCO dataset dict: `images` (with `id`), `categories` (with `id`) and
            `annotations` (`image_id`, `category_id`, `bbox` [x, y, w, h], `area`,
            `iscrowd`, `id`). A missing `area` is taken as w * h (the mask area for
            "segm"); a missing `iscrowd` as 0. For "segm", annotations need a
            `segmentation` (polygons, uncompressed or compressed RLE), and images with
            polygons their `height` and `width`; `bbox` is not needed.
        detections: COCO results: a list of `{"image_id", "category_id", "bbox", "score"}`;
            for "segm", `{"image_id", "category_id", "segmentation", "score"}` with an RLE
            `segmentation` (as `COCO.loadRes`, detection areas are the mask areas, or
            the boxes' w * h when the first result has a `bbox`).
        iou_type: "bbox" (box IoU) or "segm" (mask IoU on run-length masks, crowd ground
            truth as `intersection / detection area`; see `coco_masks`).

    Returns:
        A `COCOResult`; `result.stats` holds the 12 numbers pycocotools' `summarize` prints.

    Raises:
        ValueError: detections on images or categories the ground truth does not define
            (a class-index mismatch would otherwise give a silent zero mAP), or malformed input.
    """
    if iou_type not in ("bbox", "segm"):
        raise ValueError(f"iou_type must be 'bbox' or 'segm'. Received: iou_type={iou_type!r}")
    gt, dt, image_ids, category_ids, masks = _parse(ground_truth, detections, iou_type)
    num_images, num_categories = len(image_ids), len(category_ids)
    # Group = (category, image), category-major as COCOeval.evalImgs; stable sorts keep the
    # file order of ties, exactly as pycocotools' per-group lists and mergesorts.
    gt["group"] = gt["category"] * num_images + gt["image"]
    order = np.argsort(gt["group"], kind="stable")
    gt = {key: value[order] for key, value in gt.items()}
    dt["group"] = dt["category"] * num_images + dt["image"]
    order = np.lexsort((-dt["score"], dt["group"]))
    dt = {key: value[order] for key, value in dt.items()}
    starts = np.searchsorted(dt["group"], dt["group"])
    dt["rank"] = np.arange(len(dt["group"])) - starts
    keep = dt["rank"] < MAX_DETECTIONS[-1]
    dt = {key: value[keep] for key, value in dt.items()}
    pair_iou = _box_pair_iou(gt, dt) if masks is None else _mask_pair_iou(gt, dt, masks)
    matched, on_ignored = _match_all(gt, dt, num_categories * num_images, pair_iou)
    precision, recall = _accumulate(gt, dt, matched, on_ignored, num_categories)
    return COCOResult(_summarize(precision, recall), precision, recall, category_ids.tolist())


def coco_evaluate_arrays(gt_boxes, gt_classes, det_boxes, det_scores, det_classes,
                         num_classes, gt_crowd=None, box_format="xyxy") -> COCOResult:
    """COCO evaluation of per-image arrays (e.g. a detector's padded outputs).

    Args:
        gt_boxes: per image, `(num_gt, 4)` boxes in `box_format` ("xyxy" or "xywh", pixels).
        gt_classes: per image, `(num_gt,)` class ids in `0..num_classes-1`; -1 marks padding.
        det_boxes, det_scores, det_classes: per image, `(num_det, 4)`, `(num_det,)`,
            `(num_det,)`; entries with class -1 are padding.
        num_classes: the number of real classes of the model.
        gt_crowd: optional per-image `(num_gt,)` crowd flags.
        box_format: "xyxy" (the data layer's convention) or "xywh".

    Raises:
        ValueError: class ids outside `0..num_classes-1` (other than the -1 padding).
    """
    if box_format not in ("xyxy", "xywh"):
        raise ValueError(f"box_format must be 'xyxy' or 'xywh'. Received: {box_format!r}")
    if not len(gt_boxes) == len(gt_classes) == len(det_boxes) == len(det_scores) == len(
            det_classes):
        raise ValueError("gt_boxes, gt_classes, det_boxes, det_scores and det_classes must "
                         "have one entry per image.")

    def xywh(boxes):
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        if box_format == "xyxy":
            boxes = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
        return boxes

    def classes_of(values, what):
        values = np.asarray(values).astype(np.int64).reshape(-1)
        bad = (values < -1) | (values >= num_classes)
        if bad.any():
            raise ValueError(f"{what} class ids must lie in 0..{num_classes - 1} (or -1 for "
                             f"padding). Received: {sorted(set(values[bad].tolist()))[:10]}")
        return values

    images, annotations, results = [], [], []
    for i in range(len(gt_boxes)):
        images.append({"id": i})
        classes, boxes = classes_of(gt_classes[i], "Ground-truth"), xywh(gt_boxes[i])
        crowd = (np.zeros(len(classes), bool) if gt_crowd is None
                 else np.asarray(gt_crowd[i], bool).reshape(-1))
        for box, c, is_crowd in zip(boxes, classes, crowd):
            if c >= 0:
                annotations.append({"id": len(annotations) + 1, "image_id": i,
                                    "category_id": int(c), "bbox": box.tolist(),
                                    "area": float(box[2] * box[3]), "iscrowd": int(is_crowd)})
        classes, boxes = classes_of(det_classes[i], "Detection"), xywh(det_boxes[i])
        for box, c, s in zip(boxes, classes, np.asarray(det_scores[i]).reshape(-1)):
            if c >= 0:
                results.append({"image_id": i, "category_id": int(c), "bbox": box.tolist(),
                                "score": float(s)})
    categories = [{"id": c} for c in range(num_classes)]
    return coco_evaluate({"images": images, "annotations": annotations,
                          "categories": categories}, results)


# ---------------------------------------------------------------------------------------------
# PASCAL VOC.


def voc_ap(recall, precision, use_07_metric=False) -> float:
    """Average precision from a recall/precision curve (detections in score order).

    Args:
        recall, precision: `(num_detections,)` cumulative curves.
        use_07_metric: VOC2007's 11-point interpolation (mean of the maximum precision at
            recall >= 0, 0.1, ..., 1); otherwise the VOC2010+ area under the monotone
            precision envelope at every recall change ("all-point").
    """
    recall, precision = np.asarray(recall, float), np.asarray(precision, float)
    if use_07_metric:
        ap = 0.0
        for t in np.arange(0.0, 1.1, 0.1):
            p = precision[recall >= t].max() if np.any(recall >= t) else 0.0
            ap += p / 11.0
        return float(ap)
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([0.0], precision, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    i = np.nonzero(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def _xyxy_iou(box, boxes, pixel_offset):
    iw = np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]) + pixel_offset
    ih = np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]) + pixel_offset
    inter = np.maximum(iw, 0.0) * np.maximum(ih, 0.0)
    area = lambda b: (b[..., 2] - b[..., 0] + pixel_offset) * (b[..., 3] - b[..., 1] + pixel_offset)
    union = area(box) + area(boxes) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def voc_evaluate(gt_boxes, gt_classes, det_boxes, det_scores, det_classes, num_classes,
                 gt_difficult=None, iou_threshold=0.5, use_07_metric=False,
                 pixel_offset=0.0) -> dict:
    """PASCAL VOC mean average precision of per-image xyxy arrays.

    Args:
        gt_boxes: per image, `(num_gt, 4)` xyxy boxes; gt_classes `(num_gt,)` in
            `0..num_classes-1` (-1 = padding); gt_difficult optional `(num_gt,)` flags.
        det_boxes, det_scores, det_classes: per image, `(num_det, 4)`, `(num_det,)`,
            `(num_det,)`.
        iou_threshold: a match needs IoU strictly greater than this (0.5 in VOC).
        use_07_metric: 11-point AP (VOC2007) instead of all-point AP (VOC2010+).
        pixel_offset: 1.0 for the devkit's inclusive integer pixel boxes (`x2 - x1 + 1`);
            0.0 for continuous coordinates.

    Returns:
        `{"mAP": float, "ap": (num_classes,) array}`; a class without non-difficult ground
        truth has AP NaN and is left out of the mean.
    """
    num_images = len(gt_boxes)
    ap = np.full(num_classes, np.nan)
    for c in range(num_classes):
        gts, taken, npos = [], [], 0
        for i in range(num_images):
            classes = np.asarray(gt_classes[i]).reshape(-1)
            if classes.size and (classes.max() >= num_classes or classes.min() < -1):
                raise ValueError(f"Ground-truth class ids must lie in 0..{num_classes - 1}.")
            sel = classes == c
            boxes = np.asarray(gt_boxes[i], float).reshape(-1, 4)[sel]
            difficult = (np.zeros(len(boxes), bool) if gt_difficult is None
                         else np.asarray(gt_difficult[i], bool).reshape(-1)[sel])
            gts.append((boxes, difficult))
            taken.append(np.zeros(len(boxes), bool))
            npos += int((~difficult).sum())
        image_of, boxes_of, scores_of = [], [], []
        for i in range(num_images):
            classes = np.asarray(det_classes[i]).reshape(-1)
            if classes.size and (classes.max() >= num_classes or classes.min() < -1):
                raise ValueError(f"Detection class ids must lie in 0..{num_classes - 1}.")
            sel = classes == c
            boxes_of.append(np.asarray(det_boxes[i], float).reshape(-1, 4)[sel])
            scores_of.append(np.asarray(det_scores[i], float).reshape(-1)[sel])
            image_of.append(np.full(int(sel.sum()), i))
        if npos == 0:
            continue
        image_of = np.concatenate(image_of)
        boxes = np.concatenate(boxes_of)
        order = np.argsort(-np.concatenate(scores_of), kind="stable")
        tp = np.zeros(len(order))
        fp = np.zeros(len(order))
        for rank, j in enumerate(order):
            g_boxes, difficult = gts[image_of[j]]
            if len(g_boxes) == 0:
                fp[rank] = 1
                continue
            overlaps = _xyxy_iou(boxes[j], g_boxes, pixel_offset)
            best = int(np.argmax(overlaps))
            if overlaps[best] > iou_threshold:
                if difficult[best]:
                    continue
                if not taken[image_of[j]][best]:
                    tp[rank] = 1
                    taken[image_of[j]][best] = True
                else:
                    fp[rank] = 1
            else:
                fp[rank] = 1
        tp, fp = np.cumsum(tp), np.cumsum(fp)
        recall = tp / npos
        precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
        ap[c] = voc_ap(recall, precision, use_07_metric)
    defined = ap[~np.isnan(ap)]
    return {"mAP": float(defined.mean()) if defined.size else float("nan"), "ap": ap}
