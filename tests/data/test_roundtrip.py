"""Write then read gives back the same boxes, classes and masks, for every format."""

import numpy as np
import pytest

from kerascv_suite.data import (convert, load_digits, make_shapes, read_coco, read_dataset,
                                read_folders, read_voc, write_dataset)


@pytest.fixture(scope="module")
def shapes():
    return make_shapes(count=5, image_size=40, num_classes=3, max_objects=3, seed=11)


def by_name(ds):
    return {s["path"].rsplit("/", 1)[-1].rsplit(".", 1)[0]: s for s in ds}


def test_voc_round_trip(shapes, tmp_path):
    assert write_dataset(shapes, tmp_path, "voc", "train") == len(shapes)
    detection = by_name(read_voc(tmp_path, "train"))
    segmentation = by_name(read_voc(tmp_path, "train", task="segmentation"))
    for stem, original in by_name(shapes).items():
        np.testing.assert_array_equal(detection[stem]["boxes"], original["boxes"])
        np.testing.assert_array_equal(detection[stem]["classes"], original["classes"])
        np.testing.assert_array_equal(segmentation[stem]["mask"], original["mask"])


@pytest.mark.parametrize("segmentation", ["rle", "polygon"])
def test_coco_round_trip(shapes, tmp_path, segmentation):
    write_dataset(shapes, tmp_path, "coco", "val", segmentation=segmentation)
    ds = read_coco(tmp_path, "val")
    assert ds.task == {"detection", "segmentation", "keypoints"}
    read = by_name(ds)
    for stem, original in by_name(shapes).items():
        sample = read[stem]
        np.testing.assert_allclose(sample["boxes"], original["boxes"], atol=1e-4)
        np.testing.assert_array_equal(sample["classes"], original["classes"])
        np.testing.assert_allclose(sample["keypoints"], original["keypoints"], atol=1e-3)
        if segmentation == "rle":
            np.testing.assert_array_equal(sample["instance_masks"], original["instance_masks"])
            np.testing.assert_array_equal(sample["mask"], original["mask"])
        else:
            # Polygons through boundary-pixel centres rasterize back to the same pixels.
            np.testing.assert_array_equal(sample["instance_masks"], original["instance_masks"])


def test_yolo_round_trip(shapes, tmp_path):
    write_dataset(shapes, tmp_path, "yolo", "train")
    read = by_name(read_dataset(tmp_path, "yolo", "train"))
    for stem, original in by_name(shapes).items():
        # Six decimals of a normalized coordinate: 1e-6 * 40 px.
        np.testing.assert_allclose(read[stem]["boxes"], original["boxes"], atol=1e-3)
        np.testing.assert_array_equal(read[stem]["classes"], original["classes"])


def test_yolo_polygon_round_trip(shapes, tmp_path):
    write_dataset(shapes, tmp_path, "yolo", "train", polygons=True)
    ds = read_dataset(tmp_path, "yolo", "train")
    assert "segmentation" in ds.task
    read = by_name(ds)
    for stem, original in by_name(shapes).items():
        np.testing.assert_array_equal(read[stem]["classes"], original["classes"])
        ours, theirs = read[stem]["instance_masks"], original["instance_masks"]
        iou = (ours & theirs).sum() / (ours | theirs).sum()
        assert iou > 0.95


def test_mask_folder_round_trip(shapes, tmp_path):
    write_dataset(shapes, tmp_path, "masks", "train")
    ds = read_dataset(tmp_path, "masks", "train")
    assert ds.class_names == shapes.class_names and ds.has_background
    read = by_name(ds)
    for stem, original in by_name(shapes).items():
        np.testing.assert_array_equal(read[stem]["mask"], original["mask"])
        np.testing.assert_array_equal(read[stem]["image"], original["image"])  # PNG


def test_class_folders_round_trip(tmp_path):
    digits = load_digits("val")
    assert write_dataset(digits, tmp_path, "folders", "val") == len(digits)
    ds = read_folders(tmp_path, "val", channels=1)
    assert ds.class_names == digits.class_names and len(ds) == len(digits)
    read = by_name(ds)
    for sample in digits:
        got = read[sample["path"].rsplit("/", 1)[-1]]
        assert got["label"] == sample["label"]
        np.testing.assert_array_equal(got["image"], sample["image"])


def test_detection_to_folders_writes_crops(shapes, tmp_path):
    written = write_dataset(shapes, tmp_path, "folders")
    assert written == sum(len(s["boxes"]) for s in shapes)
    ds = read_folders(tmp_path)
    assert ds.class_names == shapes.class_names and len(ds) == written


def test_convert_voc_to_coco_keeps_boxes(shapes, tmp_path):
    write_dataset(shapes, tmp_path / "voc", "voc", "train")
    write_dataset(make_shapes(count=2, image_size=40, seed=11, split="val"), tmp_path / "voc",
                  "voc", "val")
    results = convert(tmp_path / "voc", "voc", tmp_path / "coco", "coco")
    assert sorted(results) == ["train", "val"]
    read = by_name(read_coco(tmp_path / "coco", "train"))
    for stem, original in by_name(shapes).items():
        np.testing.assert_allclose(read[stem]["boxes"], original["boxes"], atol=1e-4)
        np.testing.assert_array_equal(read[stem]["classes"], original["classes"])
