"""`kcv detect FOLDER`: annotated images, COCO-format detections, skips and re-runs."""

import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from kerascv_suite.apps.cli import main
from kerascv_suite.data import decode_image, make_shapes, write_image
from kerascv_suite.pipelines.detect_folder import letterbox, to_original

# Shapes images of three sizes, none the detector's 64 x 64 input, two not square.
SIZES = {"a": (96, 96), "b": (80, 120), "sub/c": (120, 72)}


def _invoke(*args, code=0):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == code, result.output + repr(result.exception)
    return result


@pytest.fixture(scope="module")
def detector_file(tmp_path_factory):
    """An untrained tiny YOLO v1 (3 classes, 64 x 64), saved as .keras."""
    from kerascv_suite.models.registry import build

    model = build("yolo_v1", input_shape=(64, 64, 3), num_classes=3, width=1 / 16,
                  fc_units=32)
    path = tmp_path_factory.mktemp("model") / "yolo.keras"
    model.save(path)
    return path


@pytest.fixture(scope="module")
def named_detector_file(tmp_path_factory):
    """The same tiny YOLO v1, carrying its class names, saved as .keras."""
    from kerascv_suite.models import with_metadata
    from kerascv_suite.models.registry import build

    model = with_metadata(build("yolo_v1", input_shape=(64, 64, 3), num_classes=3,
                                width=1 / 16, fc_units=32),
                          class_names=["circle", "square", "triangle"])
    path = tmp_path_factory.mktemp("model") / "named.keras"
    model.save(path)
    return path


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "images"
    for name, size in SIZES.items():
        write_image(root / f"{name}.png", make_shapes(1, size, seed=1)[0]["image"])
    (root / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    (root / "notes.jpg").write_text("a text file named like an image")
    return root


def test_help_does_not_import_keras():
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from kerascv_suite.apps.cli import main\n"
        "r = CliRunner().invoke(main, ['detect', '--help'])\n"
        "assert r.exit_code == 0 and '--score-threshold' in r.output, r.output\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'jax', 'torch') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_box_mapping_back_to_the_original_image():
    boxes = np.array([[0, 0, 64, 64], [16, 8, 32, 40]], np.float64)
    # Stretch: x * 120 / 64, y * 80 / 64.
    np.testing.assert_allclose(to_original(boxes, (80, 120), (64, 64)),
                               [[0, 0, 120, 80], [30, 10, 60, 50]])
    # Letterbox of 80 x 120 into 64 x 64: scale 64 / 120, content 43 x 64 rows 10..53,
    # so y_original = (y - 10) * 120 / 64 (clipped to the image).
    np.testing.assert_allclose(to_original(boxes, (80, 120), (64, 64), "letterbox"),
                               [[0, 0, 120, 80], [30, 0, 60, 56.25]])
    canvas = letterbox(np.full((80, 120, 3), 7, np.uint8), (64, 64))
    assert canvas.shape == (64, 64, 3)
    assert np.all(canvas[10:53] == 7) and np.all(canvas[:10] == 114) and \
        np.all(canvas[53:] == 114)


def test_detect_writes_coco_json_skips_bad_files_and_reruns(detector_file, folder, tmp_path):
    out = tmp_path / "out"
    result = _invoke("detect", folder, "--model", detector_file, "--out", out,
                     "--score-threshold", 0.0, "--batch-size", 2, "--max-detections", 5)
    assert "3 written, 0 already done, 2 skipped" in result.output
    assert "corrupt.png" in result.output and "notes.jpg" in result.output
    skipped = (out / "skipped.txt").read_text().splitlines()
    assert sorted(line.split("\t")[0] for line in skipped) == ["corrupt.png", "notes.jpg"]

    coco = json.loads((out / "detections.json").read_text())
    assert {img["file_name"]: (img["height"], img["width"]) for img in coco["images"]} == \
        {f"{name}.png": size for name, size in SIZES.items()}
    assert coco["categories"] == [{"id": c, "name": f"class_{c}"} for c in range(3)]
    image_of = {img["id"]: img for img in coco["images"]}
    assert coco["annotations"], "a zero threshold keeps detections"
    for ann in coco["annotations"]:
        img = image_of[ann["image_id"]]
        x, y, w, h = ann["bbox"]
        assert 0 <= ann["category_id"] < 3 and 0 <= ann["score"] <= 1
        assert x >= 0 and y >= 0 and w >= 0 and h >= 0
        assert x + w <= img["width"] + 0.01 and y + h <= img["height"] + 0.01
    per_image = {}
    for ann in coco["annotations"]:
        per_image[ann["image_id"]] = per_image.get(ann["image_id"], 0) + 1
    assert max(per_image.values()) <= 5
    results = json.loads((out / "results.json").read_text())
    assert results == [{k: a[k] for k in ("image_id", "category_id", "bbox", "score")}
                       for a in coco["annotations"]]
    for name, size in SIZES.items():
        stem = name.replace("/", "__")
        assert decode_image(out / "annotated" / f"{stem}.jpg").shape[:2] == size
        record = json.loads((out / "detections" / f"{stem}.json").read_text())
        assert record["file_name"] == f"{name}.png"

    before = (out / "annotated" / "a.jpg").stat().st_mtime_ns
    again = _invoke("detect", folder, "--model", detector_file, "--out", out)
    assert "0 written, 3 already done, 2 skipped" in again.output
    assert (out / "annotated" / "a.jpg").stat().st_mtime_ns == before
    assert json.loads((out / "detections.json").read_text())["annotations"] == \
        coco["annotations"]  # the summary still holds the earlier run's detections

    redo = _invoke("detect", folder, "--model", detector_file, "--out", out, "--overwrite",
                   "--class-names", "circle,square,triangle", "--score-threshold", 0.0,
                   "--resize", "letterbox")
    assert "3 written" in redo.output
    coco = json.loads((out / "detections.json").read_text())
    assert [c["name"] for c in coco["categories"]] == ["circle", "square", "triangle"]
    record = json.loads((out / "detections" / "b.json").read_text())
    assert {d["category"] for d in record["detections"]} <= {"circle", "square", "triangle"}


def test_detections_match_the_detector_on_the_resized_image(detector_file, folder, tmp_path):
    """The JSON boxes are the detector's boxes on the resized image, scaled back."""
    import keras

    from kerascv_suite.models.detection.inference import Detector
    from kerascv_suite.pipelines.folder_io import resize_image

    out = tmp_path / "out"
    _invoke("detect", folder, "--model", detector_file, "--out", out, "--score-threshold", 0.1)
    detector = Detector(keras.saving.load_model(detector_file), score_threshold=0.1)
    image = decode_image(folder / "b.png")
    raw = detector.predict(resize_image(image, (64, 64))[None])
    n = int(raw["num_detections"][0])
    boxes = raw["boxes"][0, :n] * [120 / 64, 80 / 64, 120 / 64, 80 / 64]
    record = json.loads((out / "detections" / "b.json").read_text())
    assert len(record["detections"]) == n
    got = np.array([d["bbox"] for d in record["detections"]]).reshape(-1, 4)
    expected = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
    np.testing.assert_allclose(got, expected, atol=0.02)  # JSON keeps 2 decimals
    np.testing.assert_allclose([d["score"] for d in record["detections"]],
                               raw["scores"][0, :n], atol=1e-5)


def test_bad_input_is_a_usage_error(detector_file, folder, tmp_path):
    result = _invoke("detect", folder, "--model", "lenet5", "--out", tmp_path / "o", code=2)
    assert "not a detector" in result.output
    result = _invoke("detect", folder, "--model", detector_file, "--class-names", "a,b",
                     "--out", tmp_path / "o", code=2)
    assert "2 class names" in result.output and "3 classes" in result.output
    result = _invoke("detect", folder, "--model", "no_such_model", code=2)
    assert "no_such_model" in result.output


def test_detect_reads_the_class_names_the_model_carries(named_detector_file, folder,
                                                        tmp_path):
    out = tmp_path / "out"
    _invoke("detect", folder, "--model", named_detector_file, "--out", out,
            "--score-threshold", 0.0, "--max-detections", 2)
    coco = json.loads((out / "detections.json").read_text())
    assert [c["name"] for c in coco["categories"]] == ["circle", "square", "triangle"]
    assert {a["category_id"] for a in coco["annotations"]} <= {0, 1, 2}
    # --class-names overrides them.
    _invoke("detect", folder, "--model", named_detector_file, "--out", out, "--overwrite",
            "--class-names", "a,b,c")
    coco = json.loads((out / "detections.json").read_text())
    assert [c["name"] for c in coco["categories"]] == ["a", "b", "c"]


def test_detect_on_an_onnx_export_writes_the_keras_detections(named_detector_file, folder,
                                                              tmp_path):
    """`kcv detect --model x.onnx` runs the export with onnxruntime through the same folder
    pipeline: the same detections.json as the .keras model, class names from the export."""
    import keras

    if keras.backend.backend() != "tensorflow":
        pytest.skip("ONNX exports are written on the tensorflow backend")
    from kerascv_suite.export import export_model, match_detections

    export = export_model(keras.saving.load_model(named_detector_file), tmp_path / "y.onnx",
                          "onnx", score_threshold=0.0, max_detections=5)
    results = {}
    for name, model in (("keras", named_detector_file), ("onnx", export)):
        _invoke("detect", folder, "--model", model, "--out", tmp_path / name,
                "--score-threshold", 0.0, "--max-detections", 5)
        results[name] = json.loads((tmp_path / name / "detections.json").read_text())
    assert [c["name"] for c in results["onnx"]["categories"]] == ["circle", "square",
                                                                   "triangle"]
    assert len(results["keras"]["annotations"]) > 0
    for image in results["keras"]["images"]:
        per = {}
        for name, coco in results.items():
            dets = [a for a in coco["annotations"] if a["image_id"] == image["id"]]
            xywh = np.array([a["bbox"] for a in dets], np.float32).reshape(-1, 4)
            per[name] = {"boxes": np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]],
                                                 1)[None],
                         "scores": np.array([a["score"] for a in dets])[None],
                         "classes": np.array([a["category_id"] for a in dets])[None],
                         "num_detections": np.array([len(dets)])}
        min_iou, diff, mismatched = match_detections(per["keras"], per["onnx"], 0.0, 1e-4)
        # JSON keeps 2 decimals of a box: IoU 0.99 holds for boxes over a few pixels.
        assert mismatched == 0 and min_iou >= 0.99 and diff <= 1e-4, (min_iou, diff)


def test_an_empty_folder_is_a_data_error(tmp_path):
    from kerascv_suite.data.errors import DataError
    from kerascv_suite.pipelines.folder_io import list_files

    (tmp_path / "empty" / ".hidden").mkdir(parents=True)
    with pytest.raises(DataError, match="No files in"):
        list_files(tmp_path / "empty")
