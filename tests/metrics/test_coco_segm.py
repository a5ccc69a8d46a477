"""COCO mask evaluation: `coco_evaluate(..., iou_type="segm")` against pycocotools' COCOeval.

Small randomized sets (32-64 px images) with polygon, uncompressed-RLE and compressed-RLE
ground truth, crowd regions, empty images, more than maxDets detections, masks on the image
border, tiny masks and categories without ground truth; the 12 statistics, the precision and
the recall arrays must agree to 1e-6.
"""

import contextlib
import copy
import io

import numpy as np
import pytest

from kerascv_suite.data.rle import rle_decode, rle_encode
from kerascv_suite.metrics import coco_evaluate
from kerascv_suite.metrics.coco_masks import encode_segmentations, mask_iou

pycocotools = pytest.importorskip("pycocotools")


def _reference(gt, detections):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = copy.deepcopy(gt)
        coco.createIndex()
        results = coco.loadRes(copy.deepcopy(detections))
        evaluator = COCOeval(coco, results, "segm")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator


def _random_mask(rng, h, w):
    kind = rng.integers(4)
    mask = np.zeros((h, w), np.uint8)
    if kind == 0:  # tiny
        y, x = rng.integers(h), rng.integers(w)
        mask[y:y + rng.integers(1, 3), x:x + rng.integers(1, 3)] = 1
    elif kind == 1:  # touching the border
        y0, x0 = rng.integers(h // 2), rng.integers(w // 2)
        if rng.random() < 0.5:
            mask[y0:, x0:] = 1
        else:
            mask[:h - y0, :w - x0] = 1
    else:  # a blob with holes
        y0, x0 = rng.integers(h - 4), rng.integers(w - 4)
        y1, x1 = y0 + rng.integers(4, h - y0 + 1), x0 + rng.integers(4, w - x0 + 1)
        mask[y0:y1, x0:x1] = rng.random((y1 - y0, x1 - x0)) < 0.8
    return mask


def _random_polygons(rng, h, w):
    polygons = []
    for _ in range(int(rng.integers(1, 3))):
        n = int(rng.integers(3, 8))
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        angle = np.sort(rng.uniform(0, 2 * np.pi, n))
        radius = rng.uniform(0.5, min(h, w) / 2, n)
        points = np.stack([cx + radius * np.cos(angle), cy + radius * np.sin(angle)], 1)
        if rng.random() < 0.3:
            points = np.round(points * 2) / 2  # vertices on pixel edges and centres
        polygons.append([float(v) for v in points.reshape(-1)])
    return polygons


def _perturb(rng, mask):
    out = mask
    if rng.random() < 0.5:
        out = np.roll(mask, (int(rng.integers(-1, 2)), int(rng.integers(-1, 2))), axis=(0, 1))
    return (out & (rng.random(mask.shape) > 0.1)).astype(np.uint8)


def _random_case(seed, num_images=6, num_categories=3, crowd_rate=0.2, many_dets=False,
                 det_boxes=False):
    rng = np.random.default_rng(seed)
    images, annotations, detections = [], [], []
    for i in range(num_images):
        h, w = int(rng.integers(32, 65)), int(rng.integers(32, 65))
        images.append({"id": i + 1, "height": h, "width": w})
        count = 0 if rng.random() < 0.2 else int(rng.integers(1, 5))
        for _ in range(count):
            # The last category never has ground truth.
            category = int(rng.integers(1, num_categories))
            crowd = rng.random() < crowd_rate
            encoding = "uncompressed" if crowd else ("polygon", "rle", "uncompressed")[
                int(rng.integers(3))]
            if encoding == "polygon":
                segmentation = _random_polygons(rng, h, w)
                from pycocotools import mask as mask_utils  # the test reference rasterizer

                mask = mask_utils.decode(mask_utils.merge(
                    mask_utils.frPyObjects(segmentation, h, w)))
            else:
                mask = _random_mask(rng, h, w)
                segmentation = rle_encode(mask, compressed=encoding == "rle")
            area = float(mask.sum()) if rng.random() < 0.8 else float(rng.uniform(0, 2000))
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1,
                                "category_id": category, "segmentation": segmentation,
                                "area": area, "iscrowd": int(crowd)})
            for _ in range(int(rng.integers(0, 3))):
                label = category if rng.random() < 0.85 else int(rng.integers(1, num_categories
                                                                              + 1))
                detections.append((i + 1, label, _perturb(rng, mask)))
        extra = 120 if many_dets and i == 0 else int(rng.integers(0, 4))
        label = int(rng.integers(1, num_categories + 1))
        for _ in range(extra):
            detections.append((i + 1, label if many_dets else int(
                rng.integers(1, num_categories + 1)), _random_mask(rng, h, w)))
    results = []
    for image_id, label, mask in detections:
        result = {"image_id": image_id, "category_id": label, "segmentation": rle_encode(mask),
                  # Ties in score, so the stable-sort order is exercised.
                  "score": float(np.round(rng.random(), 1))}
        if det_boxes:
            result["bbox"] = [float(v) for v in rng.uniform(1, 30, 4)]
        results.append(result)
    categories = [{"id": c + 1, "name": f"c{c + 1}"} for c in range(num_categories)]
    return {"images": images, "annotations": annotations, "categories": categories}, results


def _assert_parity(gt, detections):
    reference = _reference(gt, detections)
    ours = coco_evaluate(gt, detections, iou_type="segm")
    np.testing.assert_allclose(ours.stats, reference.stats, atol=1e-6, rtol=0)
    np.testing.assert_allclose(ours.precision, reference.eval["precision"], atol=1e-6, rtol=0)
    np.testing.assert_allclose(ours.recall, reference.eval["recall"], atol=1e-6, rtol=0)
    return ours


def test_segm_matches_pycocotools_on_random_cases():
    # One test over several cases: each test pays the suite's per-test keras teardown.
    for seed in range(6):
        gt, detections = _random_case(seed)
        ours = _assert_parity(gt, detections)
        assert ours.stats[0] > 0, seed  # the perturbed masks do match something
    gt, detections = _random_case(11, num_images=3, crowd_rate=0.6, many_dets=True)
    assert max(np.unique([d["image_id"] for d in detections], return_counts=True)[1]) > 100
    _assert_parity(gt, detections)
    # COCO.loadRes takes w * h of a result's bbox as its area when results carry boxes.
    gt, detections = _random_case(5, det_boxes=True)
    _assert_parity(gt, detections)


def test_segm_mask_iou_crowd_and_rle_roundtrip_by_hand():
    h, w = 6, 5
    a = np.zeros((h, w), np.uint8)
    a[1:4, 1:3] = 1  # 6 pixels
    b = np.zeros((h, w), np.uint8)
    b[2:6, 2:5] = 1  # 12 pixels, 2 shared with a
    dts = encode_segmentations([rle_encode(a)], [h], [w], "detection")
    gts = encode_segmentations([rle_encode(b, compressed=False), rle_encode(b)], [h, h],
                               [w, w], "ground-truth")
    assert dts.area.tolist() == [6] and gts.area.tolist() == [12, 12]
    iou = mask_iou(dts, [0, 0], gts, [0, 1], [False, True])
    np.testing.assert_array_equal(iou, [2 / 16, 2 / 6])
    np.testing.assert_array_equal(rle_decode(rle_encode(a)), a)


def test_segm_errors_name_the_problem():
    gt, detections = _random_case(3, num_images=2)
    with pytest.raises(ValueError, match="iou_type"):
        coco_evaluate(gt, detections, iou_type="keypoints")
    no_size = copy.deepcopy(gt)
    polygon = {"id": 99, "image_id": 1, "category_id": 1, "area": 4.0, "iscrowd": 0,
               "segmentation": [[1, 1, 5, 1, 5, 5]]}
    no_size["annotations"].append(polygon)
    del no_size["images"][0]["height"]
    with pytest.raises(ValueError, match="height"):
        coco_evaluate(no_size, detections, iou_type="segm")
    wrong_size = [dict(detections[0], segmentation=rle_encode(np.ones((7, 9), np.uint8)))]
    wrong_size[0]["image_id"] = gt["annotations"][0]["image_id"]
    wrong_size[0]["category_id"] = gt["annotations"][0]["category_id"]
    with pytest.raises(ValueError, match="size"):
        coco_evaluate(gt, wrong_size, iou_type="segm")
    with pytest.raises(ValueError, match="segmentation"):
        coco_evaluate(gt, [{"image_id": 1, "category_id": 1, "score": 1.0}], iou_type="segm")


def test_evaluate_detections_cli_iou_type_segm(tmp_path):
    import json

    from click.testing import CliRunner

    from kerascv_suite.apps.cli import main

    gt, detections = _random_case(1, num_images=3)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "dt.json").write_text(json.dumps(detections))
    result = CliRunner().invoke(main, ["evaluate-detections", str(tmp_path / "gt.json"),
                                       str(tmp_path / "dt.json"), "--iou-type", "segm",
                                       "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    np.testing.assert_allclose(list(report.values()), _reference(gt, detections).stats,
                               atol=1e-6, rtol=0)
