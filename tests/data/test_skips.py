"""Issue 12, "every skip counted and shown": `SkipReport`, the up-front image checks that
feed it, and the one-line data errors of the readers and the loader."""

import json

import cv2
import numpy as np
import pytest

from kerascv_suite.data import (AnnotationError, DataError, DataLoader, SkipLog, read_coco,
                                read_folders, read_voc)
from kerascv_suite.data.image_io import check_image
from kerascv_suite.data.skips import SkipError, SkipReport
from kerascv_suite.data.splits import check_folder, detect_format
from tests.data.corpus import noise_rgb, png_with_header_size

H, W = 40, 48


def write_bad_files(folder):
    """The four files of the issue next to a good one: {case: path}."""
    folder.mkdir(parents=True, exist_ok=True)
    cases = {"good": folder / "good.jpg", "empty": folder / "empty.jpg",
             "text": folder / "text.jpg", "truncated": folder / "truncated.jpg"}
    cv2.imwrite(str(cases["good"]), noise_rgb(H, W))
    cases["empty"].write_bytes(b"")
    cases["text"].write_text("this is not a JPEG\n")
    cv2.imwrite(str(cases["truncated"]), noise_rgb(H, W, seed=1))
    data = cases["truncated"].read_bytes()
    cases["truncated"].write_bytes(data[: len(data) // 2])
    cases["huge"] = png_with_header_size(folder / "huge.png", 20000, 20001)
    return cases


def test_report_counts_by_split_and_reason_and_writes_each_entry(tmp_path):
    log = SkipLog()
    log.add("a.xml", "object 0 ('cat')", "clipped: box out of image bounds")
    log.add("a.xml", "object 1 ('cat')", "clipped: box out of image bounds")
    log.add("b.jpg", "line 2", "missing image")
    report = SkipReport()
    report.collect("train", log)
    report.collect("train", log)  # collected once
    report.add("val", "c.jpg", None, "bad image: empty file (0 bytes)")
    report.add("val", "c.jpg", None, "bad image: empty file (0 bytes)")  # once per file
    report.add_split("test")
    assert report.total == 4 and bool(report)
    assert report.metrics() == {
        "skipped_train": 3, "skipped_train_clipped_box_out_of_image_bounds": 2,
        "skipped_train_missing_image": 1, "skipped_val": 1,
        "skipped_val_bad_image_empty_file_0_bytes": 1, "skipped_test": 0}
    lines = report.lines()
    assert lines[0].startswith("Skipped or repaired 4 entries (train 3, val 1, test 0)")
    assert any("2  clipped: box out of image bounds" in line for line in lines)
    assert "  train: b.jpg [line 2]: missing image" in lines
    path = report.write(tmp_path / "run" / "skipped.txt")
    rows = path.read_text().splitlines()
    assert rows[0].startswith("# 4 skipped or repaired")
    assert "train\ta.xml\tobject 1 ('cat')\tclipped: box out of image bounds" in rows
    assert "val\tc.jpg\t-\tbad image: empty file (0 bytes)" in rows
    empty = SkipReport()
    empty.add_split("train")
    assert empty.total == 0 and empty.metrics() == {"skipped_train": 0}
    assert empty.lines() == ["Skipped: nothing (train checked)."]


def test_strict_report_raises_naming_file_entry_and_option():
    log = SkipLog()
    log.add("ann/a.xml", "object 3 ('dog')", "box degenerate (inverted or zero area)")
    report = SkipReport(strict=True)
    with pytest.raises(SkipError) as info:
        report.collect("train", log)
    message = str(info.value)
    assert "ann/a.xml (entry object 3 ('dog')): box degenerate" in message
    assert "--strict" in message and "\n" not in message
    assert info.value.entry.split == "train" and isinstance(info.value, DataError)


def test_every_bad_file_of_the_issue_is_found_when_the_folder_is_read(tmp_path):
    cases = write_bad_files(tmp_path / "data" / "cat")
    ds = read_folders(tmp_path / "data")
    # Counted when reading, not when training: the truncated JPEG included.
    assert [r["path"] for r in ds.records] == [str(cases["good"])]
    assert dict(ds.skipped) == {"bad image: empty file (0 bytes)": 1,
                                "bad image: not an image (unrecognized file format)": 1,
                                "bad image: truncated or corrupt data": 1,
                                "bad image: decompression bomb refused": 1}
    assert check_image(cases["good"]) == (H, W)
    # A complete JPEG with bytes after its end marker decodes: not a skip.
    trailing = tmp_path / "trailing.jpg"
    trailing.write_bytes(cases["good"].read_bytes() + b"camera trailer")
    assert check_image(trailing) == (H, W)


def voc_xml(filename, objects, width=W, height=H):
    items = "".join(f"<object><name>{n}</name><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>"
                    f"<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
                    for n, b in objects)
    return (f"<annotation><filename>{filename}</filename><size><width>{width}</width>"
            f"<height>{height}</height></size>{items}</annotation>")


def write_voc_folder(root, entries, split="train"):
    """`entries`: {image id: (objects, write the image)}."""
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "labels.txt").write_text("cat\ndog\n")
    for image_id, (objects, has_image) in entries.items():
        (root / "Annotations" / f"{image_id}.xml").write_text(voc_xml(f"{image_id}.jpg",
                                                                      objects))
        if has_image:
            cv2.imwrite(str(root / "JPEGImages" / f"{image_id}.jpg"), noise_rgb(H, W))
    with open(root / "ImageSets" / "Main" / f"{split}.txt", "a") as handle:
        handle.write("".join(f"{i}\n" for i in entries))
    return root


def test_voc_boxes_are_clipped_or_dropped_and_missing_images_counted(tmp_path):
    root = write_voc_folder(tmp_path / "voc", {
        "a": ([("cat", (1, 1, 10, 10)), ("dog", (40, 30, 60, 50)),  # reaches outside
               ("cat", (20, 20, 10, 30)), ("dog", (6, 5, 5, 20))], True),  # inverted, 0-wide
        "b": ([("cat", (1, 1, 10, 10))], False),  # missing image
    })
    ds = read_voc(root, task="detection")
    assert len(ds) == 1
    np.testing.assert_allclose(ds[0]["boxes"], [[0, 0, 10, 10], [39, 29, W, H]])
    report = SkipReport()
    report.collect("train", ds.skipped)
    assert report.metrics() == {
        "skipped_train": 4, "skipped_train_clipped_box_out_of_image_bounds": 1,
        "skipped_train_box_degenerate_inverted_or_zero_area": 2,
        "skipped_train_missing_image": 1}
    files = {(e.file.split("/")[-1], e.entry) for e in report.entries}
    assert ("a.xml", "object 2 ('cat')") in files and ("b.jpg", "line 2") in files


def test_voc_detection_names_the_main_list_and_unknown_classes_name_the_cli_option(tmp_path):
    root = tmp_path / "voc"
    (root / "Annotations").mkdir(parents=True)
    with pytest.raises(DataError, match=r"ImageSets/Main/train\.txt") as info:
        read_voc(root, task="detection")
    assert "Segmentation" not in str(info.value) and "\n" not in str(info.value)
    write_voc_folder(root, {"a": ([("cow", (1, 1, 10, 10))], True)})
    with pytest.raises(AnnotationError) as info:
        read_voc(root, task="detection")
    message = str(info.value)
    assert "a.xml (entry object 0 ('cow')): unknown class 'cow'" in message
    assert "--unknown-class skip" in message and "class_names=" not in message
    assert "\n" not in message
    assert read_voc(root, task="detection", unknown_class_policy="skip").skipped[
        "unknown class"] == 1


def test_duplicate_coco_annotation_ids_name_both_entries(tmp_path):
    root = tmp_path / "coco"
    (root / "annotations").mkdir(parents=True)
    (root / "train").mkdir()
    cv2.imwrite(str(root / "train" / "a.jpg"), noise_rgb(H, W))
    ann = {"image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5], "iscrowd": 0}
    (root / "annotations" / "instances_train.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "a.jpg", "width": W, "height": H}],
        "categories": [{"id": 1, "name": "cat"}],
        "annotations": [{**ann, "id": 5}, {**ann, "id": 6}, {**ann, "id": 5}]}))
    with pytest.raises(AnnotationError, match=r"instances_train\.json \(entry annotation 5\): "
                                              r"duplicate annotation id 5: entries 0 and 2"):
        read_coco(root)


def test_bad_data_paths_are_one_line_data_errors(tmp_path):
    with pytest.raises(DataError, match="no such file or folder") as info:
        check_folder(tmp_path / "nope", "digits")
    assert "\n" not in str(info.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="the folder is empty"):
        check_folder(tmp_path / "empty", "shapes")
    (tmp_path / "flat").mkdir()
    cv2.imwrite(str(tmp_path / "flat" / "a.jpg"), noise_rgb(H, W))
    with pytest.raises(DataError, match="has no class sub-folders") as info:
        read_folders(tmp_path / "flat")
    assert "\n" not in str(info.value)
    with pytest.raises(DataError, match="--format voc|coco|yolo"):
        detect_format(tmp_path / "flat", "detection")


class GrayAugmentFails:
    """An augmenter that cannot take the samples (as colour jitter on 1-channel images did)."""

    def __call__(self, sample, seed):
        raise ValueError("colour ops need RGB images")


def test_the_loader_names_the_first_real_failure_when_inferring_shapes(tmp_path):
    cases = write_bad_files(tmp_path / "data" / "cat")
    del cases
    ds = read_folders(tmp_path / "data")
    loader = DataLoader(ds, 2, augment=GrayAugmentFails(), num_workers=0)
    with pytest.raises(DataError) as info:
        loader.element_spec()
    message = str(info.value)
    assert "augmenting" in message and "good.jpg" in message
    assert "ValueError: colour ops need RGB images" in message and "\n" not in message
    # A sample that only fails at decode time names its file and cause.
    ds.check_images = False
    ds.records[0]["path"] = str(tmp_path / "data" / "cat" / "truncated.jpg")
    with pytest.raises(DataError, match=r"reading .*truncated\.jpg failed with BadImageError"):
        DataLoader(ds, 2, num_workers=0).element_spec()
