"""Our COCO mask codecs against pycocotools (the reference implementation) on the same inputs."""

import json

import cv2
import numpy as np
import pytest
from pycocotools import mask as coco_mask
from pycocotools.coco import COCO

from kerascv_suite.data import (mask_to_polygons, polygons_to_mask, read_coco, rle_decode,
                                rle_encode)
from tests.data.corpus import noise_rgb, save_jpeg


def random_masks(count=40, seed=0):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        height, width = rng.integers(1, 30, 2)
        yield (rng.random((height, width)) < rng.random()).astype(np.uint8)


def test_compressed_rle_matches_pycocotools():
    for mask in random_masks():
        reference = coco_mask.encode(np.asfortranarray(mask))
        assert rle_encode(mask)["counts"] == reference["counts"].decode()
        np.testing.assert_array_equal(rle_decode(reference), mask)


def test_uncompressed_rle_matches_pycocotools():
    for mask in random_masks(seed=1):
        ours = rle_encode(mask, compressed=False)
        height, width = mask.shape
        reference = coco_mask.frPyObjects(ours, height, width)  # pycocotools compresses it
        assert rle_encode(mask)["counts"] == reference["counts"].decode()
        np.testing.assert_array_equal(rle_decode(ours), mask)


def test_polygons_agree_with_pycocotools():
    rng = np.random.default_rng(2)
    ious = []
    for _ in range(40):
        points = cv2.convexHull(rng.uniform(5, 55, (8, 2)).astype(np.float32)).reshape(-1)
        polygon = [points.tolist()]
        ours = polygons_to_mask(polygon, 60, 70)
        reference = coco_mask.decode(coco_mask.frPyObjects(polygon, 60, 70))[..., 0]
        ious.append((ours & reference).sum() / (ours | reference).sum())
    # The rasterizers differ only on boundary pixels (pycocotools samples its own 5x grid).
    assert min(ious) > 0.93 and np.mean(ious) > 0.97


def test_mask_to_polygons_round_trip():
    mask = np.zeros((30, 40), np.uint8)
    mask[5:20, 3:30] = 1
    mask[10:25, 10:15] = 1
    cv2.circle(mask, (33, 24), 4, 1, -1)
    np.testing.assert_array_equal(polygons_to_mask(mask_to_polygons(mask), 30, 40), mask)


def test_read_coco_masks_match_pycocotools(tmp_path):
    height, width = 30, 40
    crowd = np.zeros((height, width), np.uint8)
    crowd[20:28, 2:12] = 1
    solid = np.zeros((height, width), np.uint8)
    solid[2:9, 25:37] = 1
    data = {
        "images": [{"id": 1, "file_name": "a.jpg", "height": height, "width": width}],
        "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "bbox": [3, 2, 15, 10],
             "segmentation": [[3.2, 2.1, 18.0, 4.0, 10.5, 12.0]], "area": 1},
            {"id": 2, "image_id": 1, "category_id": 2, "iscrowd": 0, "bbox": [25, 2, 12, 7],
             "segmentation": rle_encode(solid), "area": 1},
            {"id": 3, "image_id": 1, "category_id": 1, "iscrowd": 1, "bbox": [2, 20, 10, 8],
             "segmentation": rle_encode(crowd, compressed=False), "area": 1},
        ],
    }
    (tmp_path / "annotations").mkdir()
    (tmp_path / "train").mkdir()
    save_jpeg(tmp_path / "train" / "a.jpg", noise_rgb(height, width))
    json_path = tmp_path / "annotations" / "instances_train.json"
    json_path.write_text(json.dumps(data))
    sample = read_coco(tmp_path)[0]
    api = COCO(str(json_path))
    poly_ref, rle_ref = (api.annToMask(api.anns[i]) for i in (1, 2))
    poly = sample["instance_masks"][0]
    assert (poly & poly_ref).sum() / (poly | poly_ref).sum() > 0.85
    np.testing.assert_array_equal(sample["instance_masks"][1], rle_ref)
    np.testing.assert_array_equal(sample["classes"], [0, 1])
    # Semantic mask: class c -> c + 1, crowd -> 255 (ignore).
    assert (sample["mask"][api.annToMask(api.anns[3]) > 0] == 255).all()
    assert (sample["mask"][rle_ref > 0] == 2).all()
    with_crowd = read_coco(tmp_path, include_crowd=True)[0]
    np.testing.assert_array_equal(with_crowd["iscrowd"], [False, False, True])
    np.testing.assert_array_equal(with_crowd["instance_masks"][2], crowd)


@pytest.mark.parametrize("counts", ["\x01", "0", [3, 4]])
def test_bad_rle_raises(counts):
    with pytest.raises(ValueError):
        rle_decode({"size": [3, 3], "counts": counts})
