"""The bad-annotation corpus: every case is decoded, counted as a skip, or raises naming
the file and the entry."""

import json

import numpy as np
import pytest
from PIL import Image

from kerascv_suite.data import (AnnotationError, BadImageError, UnsafePathError, read_coco,
                                read_folders, read_mask_folder, read_voc, read_yolo)
from tests.data.corpus import noise_rgb, save_jpeg

W, H = 40, 30


def voc_xml(filename, objects, width=W, height=H):
    body = "".join(
        f"<object><name>{name}</name><difficult>{hard}</difficult><bndbox><xmin>{b[0]}</xmin>"
        f"<ymin>{b[1]}</ymin><xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
        for name, b, hard in objects)
    return (f"<annotation><filename>{filename}</filename><size><width>{width}</width>"
            f"<height>{height}</height><depth>3</depth></size>{body}</annotation>")


def make_voc(root, entries, classes=("cat", "dog")):
    """entries: {image_id: (xml text or None, write_image: bool)}."""
    (root / "Annotations").mkdir(parents=True)
    (root / "JPEGImages").mkdir()
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "labels.txt").write_text("\n".join(classes) + "\n")
    for image_id, (xml, write_image) in entries.items():
        if xml is not None:
            (root / "Annotations" / f"{image_id}.xml").write_text(xml)
        if write_image:
            save_jpeg(root / "JPEGImages" / f"{image_id}.jpg", noise_rgb(H, W))
    (root / "ImageSets" / "Main" / "train.txt").write_text("\n".join(entries) + "\n")
    return root


@pytest.fixture
def voc(tmp_path):
    return make_voc(tmp_path / "voc", {
        "ok": (voc_xml("ok.jpg", [("cat", (1, 1, 10, 10), 0), ("dog", (5, 5, 20, 25), 1)]),
               True),
        "oob": (voc_xml("oob.jpg", [("cat", (-9, 3, 60, 20), 0)]), True),
        "inverted": (voc_xml("inverted.jpg", [("cat", (20, 5, 10, 15), 0),
                                              ("dog", (4, 3, 3, 9), 0),  # zero width
                                              ("dog", (2, 2, 8, 8), 0)]), True),
        "missing": (voc_xml("missing.jpg", [("cat", (1, 1, 5, 5), 0)]), False),
        "unknown": (voc_xml("unknown.jpg", [("dragon", (1, 1, 5, 5), 0),
                                            ("cat", (1, 1, 6, 6), 0)]), True),
    })


def test_voc_unknown_class_is_an_error_naming_file_and_entry(voc):
    with pytest.raises(AnnotationError) as info:
        read_voc(voc)
    message = str(info.value)
    assert "unknown.xml" in message and "object 0 ('dragon')" in message


def test_voc_skip_policy_counts_everything(voc):
    ds = read_voc(voc, unknown_class_policy="skip")
    assert len(ds) == 4  # "missing" dropped
    assert ds.skipped["missing image"] == 1
    assert ds.skipped["unknown class"] == 1
    assert ds.skipped["clipped: box out of image bounds"] == 1
    assert ds.skipped["box degenerate (inverted or zero area)"] == 2
    assert any("missing.jpg" in file for file, _, _ in ds.skipped.entries)
    samples = {s["path"].rsplit("/", 1)[-1]: s for s in ds}
    ok = samples["ok.jpg"]
    # VOC (1, 1, 10, 10) is 1-based inclusive -> pixel edges (0, 0, 10, 10).
    np.testing.assert_array_equal(ok["boxes"], [[0, 0, 10, 10], [4, 4, 20, 25]])
    np.testing.assert_array_equal(ok["classes"], [0, 1])
    np.testing.assert_array_equal(ok["difficult"], [False, True])
    np.testing.assert_array_equal(samples["oob.jpg"]["boxes"], [[0, 2, W, 20]])
    np.testing.assert_array_equal(samples["inverted.jpg"]["classes"], [1])
    assert ok["boxes"].dtype == np.float32 and ok["classes"].dtype == np.int32


def test_voc_difficult_can_be_dropped(voc):
    ds = read_voc(voc, unknown_class_policy="skip", keep_difficult=False)
    assert len(ds[0]["boxes"]) == 1


def test_voc_malformed_xml_names_line_and_column(tmp_path):
    root = make_voc(tmp_path / "voc", {"bad": ("<annotation>\n<filename>bad.jpg</filename>\n"
                                               "<object><name>cat</object>", True)})
    with pytest.raises(AnnotationError, match=r"bad\.xml.*malformed XML at line 3, column"):
        read_voc(root)


@pytest.mark.parametrize("filename", ["../../etc/passwd", "/etc/passwd", "C:\\Windows\\x.jpg"])
def test_voc_file_names_escaping_root_are_rejected(tmp_path, filename):
    root = make_voc(tmp_path / "voc", {"evil": (voc_xml(filename, []), True)})
    with pytest.raises(UnsafePathError) as info:
        read_voc(root)
    assert "evil.xml" in str(info.value) and repr(filename) in str(info.value)


def test_voc_ids_escaping_root_are_rejected(tmp_path):
    root = make_voc(tmp_path / "voc", {"../../../etc/passwd": (None, False)})
    with pytest.raises(UnsafePathError, match="train.txt.*line 1"):
        read_voc(root)


def test_bad_images_in_a_dataset_are_counted_skips(tmp_path):
    root = make_voc(tmp_path / "voc", {
        "good": (voc_xml("good.jpg", [("cat", (1, 1, 5, 5), 0)]), True),
        "text": (voc_xml("text.jpg", [("cat", (1, 1, 5, 5), 0)]), False),
        "trunc": (voc_xml("trunc.jpg", [("dog", (1, 1, 5, 5), 0)]), False),
    })
    (root / "JPEGImages" / "text.jpg").write_text("not an image")
    full = save_jpeg(tmp_path / "full.jpg", noise_rgb(H, W, seed=3)).read_bytes()
    (root / "JPEGImages" / "trunc.jpg").write_bytes(full[: len(full) // 2])
    ds = read_voc(root)
    # The header check catches the text file; the end-of-file check the truncated JPEG.
    assert len(ds) == 1 and ds[0]["path"].endswith("good.jpg")
    assert ds.skipped["bad image: not an image (unrecognized file format)"] == 1
    assert ds.skipped["bad image: truncated or corrupt data"] == 1
    assert any(f.endswith("trunc.jpg") and e == "line 3" for f, e, _ in ds.skipped.entries)


def test_an_image_failing_only_at_decode_raises_and_is_never_replaced(tmp_path):
    root = make_voc(tmp_path / "voc", {
        "good": (voc_xml("good.jpg", [("cat", (1, 1, 5, 5), 0)]), True),
        "trunc": (voc_xml("trunc.jpg", [("dog", (1, 1, 5, 5), 0)]), False),
    })
    full = save_jpeg(tmp_path / "full.jpg", noise_rgb(H, W, seed=3)).read_bytes()
    (root / "JPEGImages" / "trunc.jpg").write_bytes(full[: len(full) // 2])
    ds = read_voc(root, check_images=False)  # nothing checked up front
    assert len(ds) == 2
    with pytest.raises(BadImageError, match="trunc.jpg.*truncated"):
        ds[1]
    # Iterating skips it and counts it once per file.
    assert [s["path"].endswith("good.jpg") for s in ds] == [True]
    assert ds.skipped["bad image: truncated or corrupt data"] == 1


def coco_root(tmp_path, data, images=("a.jpg",)):
    root = tmp_path / "coco"
    (root / "annotations").mkdir(parents=True)
    (root / "train").mkdir()
    for name in images:
        save_jpeg(root / "train" / name, noise_rgb(H, W))
    path = root / "annotations" / "instances_train.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return root


def coco_data(annotations, images=None):
    return {"images": images or [{"id": 1, "file_name": "a.jpg", "width": W, "height": H}],
            "categories": [{"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}],
            "annotations": annotations}


def test_coco_malformed_json_names_line_and_column(tmp_path):
    root = coco_root(tmp_path, '{"images": [\n  {"id": 1,}\n]}')
    with pytest.raises(AnnotationError, match=r"instances_train\.json.*line 2, column 12"):
        read_coco(root)


def test_coco_boxes_and_counted_fixes(tmp_path):
    anns = [
        {"id": 10, "image_id": 1, "category_id": 7, "bbox": [2, 3, 10, 5]},
        {"id": 11, "image_id": 1, "category_id": 3, "bbox": [30, 20, 20, 20]},  # clipped
        {"id": 12, "image_id": 1, "category_id": 3, "bbox": [5, 5, 0, 4]},  # zero area
        {"id": 13, "image_id": 1, "category_id": 99, "bbox": [1, 1, 2, 2]},  # unknown
        {"id": 14, "image_id": 2, "category_id": 3, "bbox": [1, 1, 2, 2]},  # missing image
    ]
    images = [{"id": 1, "file_name": "a.jpg", "width": W, "height": H},
              {"id": 2, "file_name": "gone.jpg", "width": W, "height": H}]
    root = coco_root(tmp_path, coco_data(anns, images))
    with pytest.raises(AnnotationError, match=r"annotation 13.*unknown class 99"):
        read_coco(root)
    ds = read_coco(root, unknown_class_policy="skip")
    assert ds.class_names == ["cat", "dog"] and len(ds) == 1
    sample = ds[0]
    np.testing.assert_array_equal(sample["boxes"], [[2, 3, 12, 8], [30, 20, W, H]])
    np.testing.assert_array_equal(sample["classes"], [1, 0])
    assert ds.skipped["clipped: box out of image bounds"] == 1
    assert ds.skipped["box degenerate (inverted or zero area)"] == 1
    assert ds.skipped["unknown class"] == 1
    assert ds.skipped["missing image"] == 1
    assert ("annotation 12" in [e for _, e, _ in ds.skipped.entries])


@pytest.mark.parametrize("file_name", ["../secret.jpg", "/etc/passwd"])
def test_coco_file_names_escaping_root_are_rejected(tmp_path, file_name):
    images = [{"id": 1, "file_name": file_name, "width": W, "height": H}]
    root = coco_root(tmp_path, coco_data([], images))
    with pytest.raises(UnsafePathError, match=r"image 1.*escapes|image 1.*absolute"):
        read_coco(root)


def yolo_root(tmp_path, labels, yaml_text="names: [cat, dog]\ntrain: images/train\n"):
    root = tmp_path / "yolo"
    (root / "images" / "train").mkdir(parents=True)
    (root / "labels" / "train").mkdir(parents=True)
    (root / "data.yaml").write_text(yaml_text)
    for stem, text in labels.items():
        save_jpeg(root / "images" / "train" / f"{stem}.jpg", noise_rgb(H, W))
        if text is not None:
            (root / "labels" / "train" / f"{stem}.txt").write_text(text)
    return root


def test_yolo_reads_boxes_clips_and_treats_missing_labels_as_empty(tmp_path):
    root = yolo_root(tmp_path, {"a": "1 0.5 0.5 0.5 0.2\n0 0.95 0.5 0.2 0.2\n0 0.5 0.5 0 0.1\n",
                                "b": None})
    ds = read_yolo(root)
    a, b = ds[0], ds[1]
    np.testing.assert_allclose(a["boxes"], [[10, 12, 30, 18], [34, 12, 40, 18]], atol=1e-4)
    np.testing.assert_array_equal(a["classes"], [1, 0])
    assert b["boxes"].shape == (0, 4)
    assert ds.skipped["clipped: box out of image bounds"] == 1
    assert ds.skipped["box degenerate (inverted or zero area)"] == 1


@pytest.mark.parametrize("line, match", [
    ("0 0.5 0.5 0.2", r"a\.txt.*line 2.*expected"),
    ("0 0.5 abc 0.2 0.2", r"a\.txt.*line 2.*expected numbers"),
])
def test_yolo_malformed_lines_raise_with_file_and_line(tmp_path, line, match):
    root = yolo_root(tmp_path, {"a": f"0 0.5 0.5 0.2 0.2\n{line}\n"})
    with pytest.raises(AnnotationError, match=match):
        read_yolo(root)


def test_yolo_unknown_class_id(tmp_path):
    root = yolo_root(tmp_path, {"a": "0 0.5 0.5 0.2 0.2\n5 0.5 0.5 0.2 0.2\n"})
    with pytest.raises(AnnotationError, match=r"a\.txt.*line 2.*unknown class '5'"):
        read_yolo(root)
    ds = read_yolo(root, unknown_class_policy="skip")
    assert len(ds[0]["boxes"]) == 1 and ds.skipped["unknown class"] == 1


def test_yolo_bad_yaml_and_escaping_split(tmp_path):
    root = yolo_root(tmp_path, {"a": ""}, yaml_text="names: [cat\ntrain: images/train\n")
    with pytest.raises(AnnotationError, match=r"data\.yaml.*malformed YAML at line"):
        read_yolo(root)
    (root / "data.yaml").write_text("names: [cat]\ntrain: ../../outside\n")
    with pytest.raises(UnsafePathError, match="escapes the dataset root"):
        read_yolo(root)


def test_mask_folder_pairs_and_skips(tmp_path):
    root = tmp_path / "seg"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "labels.txt").write_text("background\nthing\n")
    for stem in ("a", "b", "c", "d"):
        save_jpeg(root / "images" / f"{stem}.jpg", noise_rgb(H, W))
    mask = np.zeros((H, W), np.uint8)
    mask[5:10, 5:10] = 1
    mask[0, 0] = 255
    Image.fromarray(mask).save(root / "masks" / "a.png")
    bad = mask.copy()
    bad[20:, 20:] = 9  # out of range -> ignore
    Image.fromarray(bad).save(root / "masks" / "b.png")
    Image.fromarray(np.zeros((H + 1, W), np.uint8)).save(root / "masks" / "c.png")  # wrong size
    Image.fromarray(mask).save(root / "masks" / "orphan.png")
    ds = read_mask_folder(root)
    assert ds.class_names == ["thing"] and ds.mask_class_names == ["background", "thing"]
    assert len(ds) == 3
    assert ds.skipped["missing mask"] == 1 and ds.skipped["mask without image"] == 1
    np.testing.assert_array_equal(ds[0]["mask"], mask)
    expected = np.where(bad == 9, 255, bad)
    np.testing.assert_array_equal(ds[1]["mask"], expected)
    assert ds.skipped["mask values out of range set to 255 (ignore)"] == 1
    with pytest.raises(BadImageError, match="mask size differs"):
        ds[2]  # c's mask has the wrong size: an error, never another sample
    assert [s["path"][-5:] for s in ds] == ["a.jpg", "b.jpg"]
    assert ds.skipped["bad image: mask size differs from image"] == 1


def test_class_folders_skip_non_images_and_bad_files(tmp_path):
    root = tmp_path / "folders"
    for name in ("cat", "dog"):
        (root / name).mkdir(parents=True)
        save_jpeg(root / name / "x.jpg", noise_rgb(H, W))
    (root / "dog" / "notes.txt").write_text("hello")
    (root / "dog" / "empty.jpg").write_bytes(b"")
    ds = read_folders(root)
    assert ds.class_names == ["cat", "dog"] and len(ds) == 2
    assert [s["label"] for s in ds] == [0, 1]
    assert ds.skipped["not an image file (suffix)"] == 1
    assert ds.skipped["bad image: empty file (0 bytes)"] == 1
    report = ds.skipped.report()
    assert "empty.jpg" in report and "notes.txt" in report
