"""Instance masks in and out of the readers and writers: VOC SegmentationObject PNGs, COCO
polygons / RLE with `masks=`, and the augmenter carrying them with their boxes."""

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from kerascv_suite.data import (AnnotationError, DataError, build_augmenter, make_shapes,
                                read_coco, read_voc, write_coco, write_mask, write_voc)
from kerascv_suite.data.rle import rle_encode


@pytest.fixture(scope="module")
def shapes():
    return make_shapes(count=4, image_size=40, num_classes=3, max_objects=3, seed=11)


@pytest.fixture(scope="module")
def voc_root(shapes, tmp_path_factory):
    root = tmp_path_factory.mktemp("voc")
    write_voc(shapes, root, "train")
    return root


def by_stem(ds):
    return {s["path"].rsplit("/", 1)[-1].rsplit(".", 1)[0]: s for s in ds}


def assert_same_instances(read, original):
    np.testing.assert_array_equal(read["boxes"], original["boxes"])
    np.testing.assert_array_equal(read["classes"], original["classes"])
    assert read["instance_masks"].dtype == np.uint8
    np.testing.assert_array_equal(read["instance_masks"], original["instance_masks"])


def test_voc_instance_round_trip(shapes, voc_root):
    ds = read_voc(voc_root, "train", instance_masks=True)
    assert ds.task == {"detection", "segmentation"} and not ds.skipped
    read = by_stem(ds)
    for stem, original in by_stem(shapes).items():
        assert_same_instances(read[stem], original)
        np.testing.assert_array_equal(read[stem]["mask"], original["mask"])
    # Plain detection reads no PNG and carries no instance masks.
    assert "instance_masks" not in read_voc(voc_root, "train")[0]


def _edit_voc(voc_root, tmp_path, stem, edit):
    """A copy of the VOC folder with `edit(xml_root, objects_png, classes_png)` applied to
    one image's files (arrays edited in place)."""
    import shutil

    from kerascv_suite.data import read_mask

    root = tmp_path / "voc"
    shutil.copytree(voc_root, root)
    xml = ET.parse(root / "Annotations" / f"{stem}.xml")
    objects = read_mask(root / "SegmentationObject" / f"{stem}.png")
    classes = read_mask(root / "SegmentationClass" / f"{stem}.png")
    edit(xml.getroot(), objects, classes)
    xml.write(root / "Annotations" / f"{stem}.xml")
    write_mask(root / "SegmentationObject" / f"{stem}.png", objects)
    write_mask(root / "SegmentationClass" / f"{stem}.png", classes)
    return root


def _stem_with(shapes, count):
    return next(s["path"].rsplit("/", 1)[-1][:-4] for s in shapes if len(s["boxes"]) >= count)


def test_voc_instance_i_is_xml_object_i(shapes, voc_root, tmp_path):
    stem = _stem_with(shapes, 2)

    def first_difficult(xml, objects, classes):
        xml.findall("object")[0].find("difficult").text = "1"

    root = _edit_voc(voc_root, tmp_path, stem, first_difficult)
    sample = by_stem(read_voc(root, instance_masks=True, keep_difficult=False))[stem]
    original = by_stem(shapes)[stem]
    # Object 1 is dropped; instance 2 of the PNG still belongs to the XML's second object.
    np.testing.assert_array_equal(sample["instance_masks"], original["instance_masks"][1:])
    np.testing.assert_array_equal(sample["boxes"], original["boxes"][1:])


@pytest.mark.parametrize("case", ["extra instance", "class disagrees", "no pixels"])
def test_voc_inconsistent_instances(shapes, voc_root, tmp_path, case):
    stem = _stem_with(shapes, 2)

    def edit(xml, objects, classes):
        if case == "extra instance":
            objects[0, 0] = 9
        elif case == "class disagrees":
            classes[objects == 1] = (classes[objects == 1] % 3) + 1
        else:
            classes[objects == 2] = 0
            objects[objects == 2] = 0

    root = _edit_voc(voc_root, tmp_path, stem, edit)
    ds = read_voc(root, instance_masks=True)
    index = [s["path"] for s in ds.records].index(str(root / "JPEGImages" / f"{stem}.jpg"))
    if case == "no pixels":
        sample = ds[index]
        assert len(sample["instance_masks"]) == len(sample["boxes"]) == \
            len(by_stem(shapes)[stem]["boxes"]) - 1
        assert ds.skipped["object without instance pixels"] == 1
        ds[index]  # counted once, however often it is loaded
        assert ds.skipped["object without instance pixels"] == 1
        return
    with pytest.raises(AnnotationError) as error:
        ds[index]
    png = "SegmentationObject" if case == "extra instance" else "SegmentationClass"
    assert f"{png}/{stem}.png" in str(error.value)
    assert ("instance 9" if case == "extra instance" else "instance 1") in str(error.value)
    assert "i-th <object>" in str(error.value)


def test_voc_missing_instance_png_is_a_counted_skip(voc_root, tmp_path):
    import shutil

    root = tmp_path / "voc"
    shutil.copytree(voc_root, root)
    victim = sorted((root / "SegmentationObject").iterdir())[0]
    victim.unlink()
    ds = read_voc(root, instance_masks=True)
    assert ds.skipped["missing instance mask"] == 1 and len(ds) == 3


def test_coco_masks_option(shapes, tmp_path):
    write_coco(shapes, tmp_path, "train", segmentation="polygon")
    read = by_stem(read_coco(tmp_path, masks=True))
    for stem, original in by_stem(shapes).items():
        assert_same_instances(read[stem], original)
    boxes_only = read_coco(tmp_path, masks=False)
    assert "segmentation" not in boxes_only.task
    assert "instance_masks" not in boxes_only[0] and "mask" not in boxes_only[0]


def _coco_file(tmp_path, annotations, height=20, width=30):
    from PIL import Image

    (tmp_path / "train").mkdir(exist_ok=True)
    Image.new("RGB", (width, height)).save(tmp_path / "train" / "a.png")
    data = {"images": [{"id": 1, "file_name": "a.png", "height": height, "width": width}],
            "categories": [{"id": 1, "name": "thing"}],
            "annotations": [{"id": k + 1, "image_id": 1, "category_id": 1, "iscrowd": 0,
                             "bbox": [2, 2, 8, 8], **a} for k, a in enumerate(annotations)]}
    (tmp_path / "annotations").mkdir(exist_ok=True)
    (tmp_path / "annotations" / "instances_train.json").write_text(json.dumps(data))
    return tmp_path


def test_coco_entries_without_or_with_bad_segmentations(tmp_path):
    square = np.zeros((20, 30), np.uint8)
    square[2:10, 2:10] = 1
    root = _coco_file(tmp_path, [{"segmentation": rle_encode(square)}, {}, {"segmentation": []}])
    ds = read_coco(root, masks=True)
    sample = ds[0]
    np.testing.assert_array_equal(sample["instance_masks"], square[None])
    assert ds.skipped["no segmentation"] == 2
    # Default: masks where the file has segmentations, an empty one for the others.
    assert len(read_coco(root)[0]["instance_masks"]) == 3
    wrong_size = rle_encode(np.zeros((10, 30), np.uint8))
    root = _coco_file(tmp_path, [{"segmentation": wrong_size}])
    with pytest.raises(AnnotationError, match=r"annotation 1.*RLE size \[10, 30\] differs"):
        read_coco(root, masks=True)
    assert "instance_masks" not in read_coco(root, masks=False)[0]  # not even checked
    root = _coco_file(tmp_path, [{"segmentation": [[1, 2, 3]]}])
    with pytest.raises(AnnotationError, match="even number"):
        read_coco(root)
    root = _coco_file(tmp_path, [{}])
    with pytest.raises(DataError, match="no annotation has a 'segmentation'"):
        read_coco(root, masks=True)


def test_augmenter_carries_instance_masks_with_boxes(shapes):
    sample = shapes[0]
    flip = build_augmenter("detection", image_size=(40, 40), scale=None, hflip=1.0,
                           color_jitter=None, fancy_pca=None)
    out = flip(sample, seed=0)
    np.testing.assert_array_equal(out["instance_masks"], sample["instance_masks"][:, :, ::-1])
    crop = build_augmenter("detection", image_size=(32, 24), scale=(0.2, 0.3), rotate=30,
                           affine_p=1.0, min_visibility=0.5)
    for seed in range(4):
        out = crop(sample, seed=seed)
        masks = out["instance_masks"]
        assert masks.shape == (len(out["boxes"]), 32, 24) and set(np.unique(masks)) <= {0, 1}
        for box, mask in zip(out["boxes"], masks):
            ys, xs = np.nonzero(mask)
            # The rotated box encloses the rotated instance (to a pixel of rounding).
            assert xs.min() >= box[0] - 1 and xs.max() + 1 <= box[2] + 1
            assert ys.min() >= box[1] - 1 and ys.max() + 1 <= box[3] + 1
    with pytest.raises(ValueError, match="one per box"):
        flip({**sample, "instance_masks": sample["instance_masks"][:0]})
