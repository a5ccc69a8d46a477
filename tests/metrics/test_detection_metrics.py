"""Detection metrics: pycocotools parity on randomized cases, hand-computed VOC values."""

import contextlib
import copy
import io

import numpy as np
import pytest

from kerascv_suite.metrics import (COCO_STAT_NAMES, coco_evaluate, coco_evaluate_arrays,
                                   voc_ap, voc_evaluate)

pycocotools = pytest.importorskip("pycocotools")


def _pycocotools(gt, detections):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = copy.deepcopy(gt)
        coco.createIndex()
        results = coco.loadRes(copy.deepcopy(detections))
        evaluator = COCOeval(coco, results, "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator


def _random_case(seed, num_images=30, num_categories=4, crowd_fraction=0.15, max_gt=6,
                 unused_categories=1, ties=False, many_detections=False, first_gt_id=1):
    """COCO gt + results: shuffled ids, ~20% empty images, crowd boxes, areas != w*h,
    categories without gt, wrong-class and random detections."""
    rng = np.random.default_rng(seed)
    ids = rng.permutation(np.arange(1, num_images * 3, 3))[:num_images]
    images = [{"id": int(i)} for i in ids]
    categories = [{"id": int(c)} for c in
                  rng.choice(np.arange(1, 40), num_categories + unused_categories, replace=False)]
    used = [c["id"] for c in categories[:num_categories]]
    annotations, detections = [], []
    for image in images:
        count = 0 if rng.random() < 0.2 else int(rng.integers(1, max_gt + 1))
        for _ in range(count):
            c = used[rng.integers(len(used))]
            w, h = rng.uniform(2, 200, 2)
            x, y = rng.uniform(0, 300, 2)
            area = float(w * h * (rng.uniform(0.6, 1.0) if rng.random() < 0.5 else 1.0))
            annotations.append({
                "id": first_gt_id + len(annotations), "image_id": image["id"],
                "category_id": c, "bbox": [float(x), float(y), float(w), float(h)],
                "area": area, "iscrowd": int(rng.random() < crowd_fraction)})
            for _ in range(int(rng.integers(0, 4))):
                jitter = rng.normal(0, 0.15, 4) * np.array([w, h, w, h])
                label = c if rng.random() < 0.85 else used[rng.integers(len(used))]
                detections.append({
                    "image_id": image["id"], "category_id": label,
                    "bbox": [float(x + jitter[0]), float(y + jitter[1]),
                             float(max(w + jitter[2], 1)), float(max(h + jitter[3], 1))],
                    "score": float(rng.random())})
        for _ in range(int(rng.integers(0, 250 if many_detections else 5))):
            w, h = rng.uniform(2, 200, 2)
            x, y = rng.uniform(0, 300, 2)
            # Many detections pile onto the first category so some groups exceed maxDets.
            label = used[0] if many_detections else used[rng.integers(len(used))]
            detections.append({"image_id": image["id"], "category_id": label,
                               "bbox": [float(x), float(y), float(w), float(h)],
                               "score": float(rng.random())})
    if ties:
        for d in detections:
            d["score"] = float(np.round(d["score"], 1))
    rng.shuffle(detections)
    return {"images": images, "annotations": annotations, "categories": categories}, detections


def _assert_parity(gt, detections):
    reference = _pycocotools(gt, detections)
    ours = coco_evaluate(gt, detections)
    np.testing.assert_allclose(ours.stats, reference.stats, rtol=0, atol=1e-6)
    np.testing.assert_allclose(ours.precision, reference.eval["precision"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(ours.recall, reference.eval["recall"], rtol=0, atol=1e-6)
    return ours


@pytest.mark.parametrize("seed", range(24))
def test_coco_matches_pycocotools_on_random_cases(seed):
    gt, detections = _random_case(seed, ties=seed % 3 == 0)
    _assert_parity(gt, detections)


@pytest.mark.parametrize("seed", range(4))
def test_coco_more_detections_than_max_dets(seed):
    # Up to 250 false positives per image on top of the jittered ones: > maxDets = 100.
    gt, detections = _random_case(100 + seed, num_images=8, many_detections=True)
    counts = np.unique([(d["image_id"], d["category_id"]) for d in detections], axis=0,
                       return_counts=True)[1]
    assert counts.max() > 100
    _assert_parity(gt, detections)


@pytest.mark.parametrize("seed", range(4))
def test_coco_mostly_crowd_and_tied_scores(seed):
    gt, detections = _random_case(200 + seed, crowd_fraction=0.6, ties=True)
    _assert_parity(gt, detections)


def test_coco_ground_truth_id_zero_quirk():
    # pycocotools stores the matched gt *id* and tests it for truth, so a match to a gt with
    # id 0 counts as unmatched; we reproduce it rather than differ on such files.
    gt, detections = _random_case(7, first_gt_id=0)
    _assert_parity(gt, detections)


def test_coco_hand_computed_single_image():
    gt = {"images": [{"id": 1}], "categories": [{"id": 1}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10],
                           "area": 100, "iscrowd": 0}]}
    # The best detection has IoU 1, the other overlaps 50% (IoU 50/150 = 1/3): one TP, then
    # one FP; precision is 1 at every recall up to 1 -> AP 1, all recalls 1.
    detections = [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.9},
                  {"image_id": 1, "category_id": 1, "bbox": [5, 0, 10, 10], "score": 0.8}]
    result = _assert_parity(gt, detections)
    stats = result.as_dict()
    assert list(stats) == list(COCO_STAT_NAMES)
    assert stats["AP"] == pytest.approx(1.0) and stats["AR1"] == 1.0
    # 100 px^2 is a "small" object (area < 32^2): medium/large have no gt -> -1.
    assert stats["APs"] == pytest.approx(1.0) and stats["APm"] == -1 and stats["ARl"] == -1


def test_coco_no_detections_gives_zero_not_error():
    gt, _ = _random_case(3)
    result = coco_evaluate(gt, [])
    assert result.stats[0] == 0.0 and result.stats[8] == 0.0


def test_coco_rejects_unknown_category_ids():
    gt, detections = _random_case(5)
    known = {c["id"] for c in gt["categories"]}
    bad = copy.deepcopy(detections)
    bad[0]["category_id"] = max(known) + 100
    with pytest.raises(ValueError, match="category ids that the ground truth does not define"):
        coco_evaluate(gt, bad)
    bad = copy.deepcopy(detections)
    bad[0]["image_id"] = -5
    with pytest.raises(ValueError, match="image ids"):
        coco_evaluate(gt, bad)


def test_coco_arrays_api_matches_dict_api_and_validates_classes():
    rng = np.random.default_rng(0)
    gt_boxes, gt_classes, det_boxes, det_scores, det_classes = [], [], [], [], []
    for _ in range(6):
        xy = rng.uniform(0, 100, (4, 2))
        wh = rng.uniform(10, 60, (4, 2))
        boxes = np.concatenate([xy, xy + wh], axis=1)
        gt_boxes.append(boxes)
        gt_classes.append(np.array([0, 1, 2, -1]))  # -1: padding
        det_boxes.append(boxes + rng.normal(0, 3, boxes.shape))
        det_scores.append(rng.random(4))
        det_classes.append(np.array([0, 1, 1, 2]))
    result = coco_evaluate_arrays(gt_boxes, gt_classes, det_boxes, det_scores, det_classes,
                                  num_classes=3)
    images = [{"id": i} for i in range(6)]
    annotations = [{"id": 1 + 3 * i + j, "image_id": i, "category_id": j,
                    "bbox": [*b[:2], *(b[2:] - b[:2])], "area": float(np.prod(b[2:] - b[:2])),
                    "iscrowd": 0} for i, boxes in enumerate(gt_boxes) for j, b in enumerate(boxes[:3])]
    results = [{"image_id": i, "category_id": int(c), "bbox": [*b[:2], *(b[2:] - b[:2])],
                "score": float(s)} for i in range(6)
               for b, s, c in zip(det_boxes[i], det_scores[i], det_classes[i])]
    reference = _pycocotools({"images": images, "annotations": annotations,
                              "categories": [{"id": c} for c in range(3)]}, results)
    np.testing.assert_allclose(result.stats, reference.stats, atol=1e-6)
    det_classes[2] = np.array([0, 1, 1, 3])  # a 1-based id leaking into a 3-class model
    with pytest.raises(ValueError, match=r"0\.\.2"):
        coco_evaluate_arrays(gt_boxes, gt_classes, det_boxes, det_scores, det_classes, 3)


def test_voc_ap_hand_computed():
    # 2 positives; detections TP, FP, TP -> recall .5, .5, 1; precision 1, .5, 2/3.
    recall = np.array([0.5, 0.5, 1.0])
    precision = np.array([1.0, 0.5, 2 / 3])
    # All-point: envelope 1 on (0, .5], 2/3 on (.5, 1] -> .5 * 1 + .5 * 2/3 = 5/6.
    assert voc_ap(recall, precision) == pytest.approx(5 / 6)
    # 11-point: t = 0..0.5 (6 points) -> 1, t = 0.6..1.0 (5 points) -> 2/3: (6 + 10/3) / 11.
    assert voc_ap(recall, precision, use_07_metric=True) == pytest.approx((6 + 10 / 3) / 11)


def test_voc_evaluate_hand_computed_with_difficult():
    gt_boxes = [np.array([[0, 0, 10, 10], [20, 20, 30, 30], [50, 50, 60, 60]], float)]
    gt_classes = [np.array([0, 0, 0])]
    difficult = [np.array([False, False, True])]
    det_boxes = [np.array([[0, 0, 10, 10], [50, 50, 60, 60], [100, 100, 110, 110],
                           [0, 0, 10, 10], [20, 20, 30, 30]], float)]
    det_scores = [np.array([0.9, 0.8, 0.7, 0.6, 0.5])]
    det_classes = [np.array([0, 0, 0, 0, 0])]
    result = voc_evaluate(gt_boxes, gt_classes, det_boxes, det_scores, det_classes, 1,
                          gt_difficult=difficult)
    # npos = 2 (the difficult box does not count). Ranked: TP, (difficult: ignored), FP,
    # FP (duplicate), TP -> tp 1,1,1,1,2 fp 0,0,1,2,2 over ranks; the ignored one adds
    # neither: recall .5,.5,.5,.5,1, precision 1,1,.5,1/3,.5.
    # All-point: .5 * 1 + .5 * .5 = .75.
    assert result["mAP"] == pytest.approx(0.75)
    # 11-point: 6 points at 1 (t <= .5), 5 points at .5 -> (6 + 2.5) / 11.
    result07 = voc_evaluate(gt_boxes, gt_classes, det_boxes, det_scores, det_classes, 1,
                            gt_difficult=difficult, use_07_metric=True)
    assert result07["mAP"] == pytest.approx(8.5 / 11)
