"""`kcv evaluate` on detectors: COCO's 12 statistics, VOC mAP, PR plots, class checks."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from kerascv_suite.apps.cli import main
from kerascv_suite.data import make_shapes
from kerascv_suite.metrics.detection import COCO_STAT_NAMES


def _invoke(*args, code=0):
    result = CliRunner().invoke(main, ["evaluate", *map(str, args)])
    assert result.exit_code == code, result.output + repr(result.exception)
    return result


def _yolo(tmp_path, num_classes):
    from kerascv_suite.models.registry import build

    model = build("yolo_v1", input_shape=(64, 64, 3), num_classes=num_classes, width=1 / 16,
                  fc_units=32)
    path = tmp_path / f"yolo{num_classes}.keras"
    model.save(path)
    return path


def test_json_report_on_shapes(tmp_path):
    out = tmp_path / "eval"
    result = _invoke("--model", _yolo(tmp_path, 3), "--shapes-count", 6, "--batch-size", 4,
                     "--score-threshold", 0.0, "--format", "json", "--out", out)
    report = json.loads(result.stdout)
    # The 12 statistics first, in pycocotools' summarize() order.
    assert list(report)[:12] == list(COCO_STAT_NAMES) == [
        "AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]
    # The command's numbers are the detection task's evaluation path on the same split
    # (the shapes test split, generated at the detector's 64 px).
    import keras

    from kerascv_suite.models.detection.inference import Detector
    from kerascv_suite.tasks.detection import evaluate_detector

    detector = Detector(keras.saving.load_model(_yolo(tmp_path, 3)), score_threshold=0.0)
    scores = evaluate_detector(detector, make_shapes(6, 64, seed=0, split="test"),
                               ["circle", "square", "triangle"], 4)
    for name, value in scores.coco.as_dict().items():
        assert report[name] == pytest.approx(value, abs=1e-12)
    assert report["VOC07_mAP50"] == pytest.approx(scores.voc07["mAP"], abs=1e-12)
    assert report["VOC_mAP50"] == pytest.approx(scores.voc["mAP"], abs=1e-12)
    assert report["images"] == 6 and report["class_names"] == ["circle", "square", "triangle"]
    assert set(report["per_class"]) == {"circle", "square", "triangle"}
    assert (out / "pr_curves.png").is_file() and (out / "report.json").is_file()
    assert json.loads((out / "report.json").read_text())["AP"] == report["AP"]
    assert any(p.endswith("pr_circle.png") or p.endswith("pr_square.png")
               for p in report["pr_plots"])
    table = _invoke("--model", _yolo(tmp_path, 3), "--shapes-count", 4)
    assert "AR100" in table.output and "VOC07 mAP50" in table.output


class _GroundTruthDetector:
    """Returns each image's ground truth as detections at the model's input scale: the
    stand-in for a perfect detector, whose AP is 1 by definition."""

    def __init__(self, dataset, size, batch_size):
        self.input_size, self.dataset, self.batch_size, self.calls = size, dataset, batch_size, 0

    def predict(self, images):
        h, w = self.input_size
        out = {"boxes": np.zeros((len(images), 8, 4)), "scores": np.zeros((len(images), 8)),
               "classes": -np.ones((len(images), 8), int), "num_detections": np.zeros(
                   len(images), int)}
        for i in range(len(images)):
            index = self.calls * self.batch_size + i
            if index >= len(self.dataset):
                continue
            sample = self.dataset[index]
            height, width = sample["image"].shape[:2]
            n = len(sample["boxes"])
            out["boxes"][i, :n] = sample["boxes"] * [w / width, h / height, w / width,
                                                     h / height]
            out["scores"][i, :n] = 0.9
            out["classes"][i, :n] = sample["classes"]
            out["num_detections"][i] = n
        self.calls += 1
        return out


def test_perfect_detections_score_one_in_original_pixels():
    from kerascv_suite.metrics.detection import coco_evaluate_arrays, voc_evaluate
    from kerascv_suite.tasks.detection import predict_detections

    # Non-square images at another size than the 64 x 64 input: boxes go through the
    # resize and back.
    dataset = make_shapes(5, (80, 120), seed=3, split="val")
    stub = _GroundTruthDetector(dataset, (64, 64), batch_size=2)
    p = predict_detections(stub, dataset, batch_size=2)
    for boxes, truth in zip(p.boxes, p.gt_boxes):
        np.testing.assert_allclose(boxes, truth, atol=1e-3)
    coco = coco_evaluate_arrays(p.gt_boxes, p.gt_classes, p.boxes, p.scores, p.classes, 3)
    assert coco.as_dict()["AP"] == pytest.approx(1.0)
    assert voc_evaluate(p.gt_boxes, p.gt_classes, p.boxes, p.scores, p.classes,
                        3)["mAP"] == pytest.approx(1.0)


def test_class_count_mismatch_names_both(tmp_path):
    result = _invoke("--model", _yolo(tmp_path, 2), "--shapes-count", 2, code=2)
    assert "predicts 2 classes" in result.output
    assert "has 3" in result.output and "circle" in result.output


def test_options_of_the_other_task_are_refused(tmp_path):
    result = _invoke("--model", _yolo(tmp_path, 3), "--tta", "10crop", code=2)
    assert "--tta" in result.output
    result = _invoke("--model", "lenet5", "--data-format", "voc", code=2)
    assert "--data-format" in result.output
    result = _invoke("--model", _yolo(tmp_path, 3), "--data", tmp_path / "missing", code=2)
    assert "missing" in result.output


def test_unknown_class_is_an_error_naming_the_entry_or_a_counted_skip(tmp_path):
    from kerascv_suite.data import write_dataset

    root = tmp_path / "voc"
    write_dataset(make_shapes(4, 64, seed=0, split="test"), root, "voc", split="test")
    xml = sorted((root / "Annotations").glob("*.xml"))[0]
    text = xml.read_text()
    first = text.index("<name>") + len("<name>")
    xml.write_text(text[:first] + "hexagon" + text[text.index("</name>", first):])
    model = _yolo(tmp_path, 3)
    refused = _invoke("--model", model, "--data", root, "--split", "test", code=2)
    assert "hexagon" in refused.output and xml.name in refused.output
    assert "--unknown-class skip" in refused.output and "Traceback" not in refused.output
    skipped = _invoke("--model", model, "--data", root, "--split", "test",
                      "--unknown-class", "skip", "--format", "json")
    assert json.loads(skipped.stdout)["images"] == 4
    assert "hexagon" in skipped.stderr and "test" in skipped.stderr
