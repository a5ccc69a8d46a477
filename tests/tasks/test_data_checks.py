"""Issue 12 at the task layer: `task.load_data` (what `kcv train` / `kcv train-detector`
run before the run folder exists) counts every skip by split and reason in `data.skips`,
refuses bad data with one-line errors, and with `strict` stops naming the file and entry.
No training: only the data is loaded."""

import cv2
import numpy as np
import pytest

from kerascv_suite.data import AnnotationError, DataError
from kerascv_suite.data.skips import SkipError
from kerascv_suite.tasks import get_task, load_config
from tests.data.corpus import noise_rgb
from tests.data.test_skips import H, W, write_bad_files, write_voc_folder


def logs():
    lines = []
    return lines, lines.append


def classification_folder(root):
    """train/{cat,dog} (cat holding the issue's four bad files) and val/{cat,dog}."""
    write_bad_files(root / "train" / "cat")
    for split, name in (("train", "dog"), ("val", "cat"), ("val", "dog")):
        (root / split / name).mkdir(parents=True)
        for k in range(2):
            cv2.imwrite(str(root / split / name / f"{k}.png"), noise_rgb(H, W, seed=k))
    return root


def test_classification_counts_the_bad_files_by_split_and_reason(tmp_path):
    root = classification_folder(tmp_path / "data")
    run_dir = tmp_path / "run"
    config = load_config(model="lenet5", data=str(root), workers=0, batch_size=4,
                         run_dir=str(run_dir))
    data = get_task("classification").load_data(config, run_dir, print)
    try:
        assert data.skips.metrics() == {
            "skipped_train": 4, "skipped_train_bad_image_empty_file_0_bytes": 1,
            "skipped_train_bad_image_not_an_image_unrecognized_file_format": 1,
            "skipped_train_bad_image_truncated_or_corrupt_data": 1,
            "skipped_train_bad_image_decompression_bomb_refused": 1,
            "skipped_val": 0, "skipped_test": 0}
        assert any("truncated.jpg" in line for line in data.skips.lines())
        # No sample stands in for a bad one: the loader gets the 3 good training images.
        batches = list(data.train_loader.iter_epoch(0))
        assert sum(len(b["labels"]) for b in batches) == 3 == len(data.splits["train"])
        assert data.skips.total == 4
        data.skips.write(run_dir / "skipped.txt")
        assert len((run_dir / "skipped.txt").read_text().splitlines()) == 5
    finally:
        data.close()


def test_strict_stops_before_the_run_folder_naming_the_file(tmp_path):
    root = classification_folder(tmp_path / "data")
    run_dir = tmp_path / "run"
    config = load_config(model="lenet5", data=str(root), workers=0, strict=True,
                         run_dir=str(run_dir))
    with pytest.raises(SkipError, match=r"train/cat/\w+\.(jpg|png): bad image: .* --strict"):
        get_task("classification").load_data(config, run_dir, print)
    assert not run_dir.exists()


def bad_voc(root):
    return write_voc_folder(root, {
        "a": ([("cat", (1, 1, 10, 10)), ("dog", (40, 30, 60, 50)),  # reaches outside
               ("cat", (20, 20, 10, 30)), ("dog", (6, 5, 5, 20))], True),  # inverted, 0-wide
        "b": ([("cat", (1, 1, 10, 10))], False),  # missing image
        "c": ([("dog", (2, 2, 12, 12))], True),
    })


def detector_config(root, run_dir, **options):
    return load_config(model="ssd300", data=str(root), workers=0, batch_size=2, image_size=64,
                       run_dir=str(run_dir), **options)


def test_detection_counts_boxes_and_missing_images_per_split(tmp_path):
    root = bad_voc(tmp_path / "voc")
    write_voc_folder(root, {"v": ([("cat", (1, 1, 60, 10))], True)}, split="val")
    data = get_task("detection").load_data(detector_config(root, tmp_path / "run"),
                                           tmp_path / "run", print)
    try:
        assert data.skips.metrics() == {
            "skipped_train": 4, "skipped_train_clipped_box_out_of_image_bounds": 1,
            "skipped_train_box_degenerate_inverted_or_zero_area": 2,
            "skipped_train_missing_image": 1,
            "skipped_val": 1, "skipped_val_clipped_box_out_of_image_bounds": 1,
            "skipped_test": 0}
        assert len(data.splits["train"]) == 2
    finally:
        data.close()
    with pytest.raises(SkipError, match=r"a\.xml \(entry object 1 \('dog'\)\): clipped"):
        get_task("detection").load_data(detector_config(root, tmp_path / "r2", strict=True),
                                        tmp_path / "r2", print)
    assert not (tmp_path / "r2").exists()


def test_detection_reads_voc_as_detection_and_applies_unknown_class(tmp_path):
    root = tmp_path / "voc"
    (root / "Annotations").mkdir(parents=True)
    (root / "JPEGImages").mkdir()
    task, run_dir = get_task("detection"), tmp_path / "run"
    with pytest.raises(DataError, match=r"ImageSets/Main/train\.txt") as info:
        task.load_data(detector_config(root, run_dir), run_dir, print)
    assert "Segmentation" not in str(info.value)
    bad_voc(root)
    write_voc_folder(root, {"v": ([("cow", (1, 1, 10, 10))], True)}, split="val")
    with pytest.raises(AnnotationError, match=r"v\.xml.*'cow'.*--unknown-class skip"):
        task.load_data(detector_config(root, run_dir), run_dir, print)
    data = task.load_data(detector_config(root, run_dir, unknown_class="skip"), run_dir, print)
    data.close()
    assert data.skips.counts()["val"] == {"unknown class": 1}
    assert not run_dir.exists()


def test_an_empty_folder_is_a_one_line_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="the folder is empty"):
        get_task("detection").load_data(detector_config(tmp_path / "empty", tmp_path / "r"),
                                        tmp_path / "r", print)
    config = load_config(model="lenet5", data=str(tmp_path / "missing"), workers=0)
    with pytest.raises(DataError, match="no such file or folder"):
        get_task("classification").load_data(config, tmp_path / "r", print)


def test_evaluation_adds_what_it_skipped_to_the_report(tmp_path):
    root = classification_folder(tmp_path / "data")
    config = load_config(model="lenet5", data=str(root), workers=0, batch_size=4)
    task = get_task("classification")
    data = task.load_data(config, tmp_path / "run", print)
    data.close()
    # A val image that breaks after the folder was checked: skipped, counted, not replaced.
    path = root / "val" / "cat" / "0.png"
    path.write_bytes(path.read_bytes()[:60])
    data.splits["val"].records[0]["path"] = str(path)

    try:
        evaluation = task.evaluate(model_for_eval(), config, data, "val", print)
    finally:
        data.close()
    assert "3 images, 1 skipped" in evaluation.summary
    assert data.skips.counts()["val"] == {"bad image: truncated or corrupt data": 1}


def model_for_eval():
    import keras

    inputs = keras.Input((32, 32, 1))
    outputs = keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(inputs))
    return keras.Model(inputs, outputs)
