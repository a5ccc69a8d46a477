"""Issue 10's "one evaluation path": a detector trained on a VOC folder whose images are
resized (320x240 -> 160x160) reports test metrics in MLflow equal to `kcv evaluate` on its
best.keras, and `kcv detect` writes the dataset's class names with no --class-names, from
the checkpoint and from the registered model."""

import json

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from kerascv_suite.apps.cli import main
from kerascv_suite.data import InMemoryDataset, make_shapes, write_voc
from kerascv_suite.tasks.detection import TEST_METRICS

WIDTH, HEIGHT = 320, 240
NAMES = ["circle", "square", "triangle"]


def write_wide_voc(root):
    """Shapes scenes stretched to 320x240 (boxes scaled with them) in VOC layout."""
    for split, count in (("train", 8), ("val", 3), ("test", 6)):
        samples = []
        for index, sample in enumerate(make_shapes(count, 96, seed=1, split=split)):
            image = cv2.resize(sample["image"], (WIDTH, HEIGHT), interpolation=cv2.INTER_LINEAR)
            boxes = np.asarray(sample["boxes"], np.float32) * ([WIDTH / 96, HEIGHT / 96] * 2)
            samples.append({"image": image, "boxes": boxes, "classes": sample["classes"],
                            "path": f"{split}_{index:03d}.jpg"})
        write_voc(InMemoryDataset(samples, NAMES, "detection"), root, split)
    return root


@pytest.mark.slow
def test_training_metrics_equal_kcv_evaluate_and_detect_names_classes(tmp_path, monkeypatch,
                                                                     mlflow_uri):
    monkeypatch.chdir(tmp_path)
    uri = mlflow_uri
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    voc = write_wide_voc(tmp_path / "voc")
    run_dir = tmp_path / "runs" / "wide"
    result = CliRunner().invoke(main, [
        # The SSD recipe's CPU variant (160x160 input).
        "train", "--model", "ssd300_shapes", "--data", str(voc), "--epochs", "1",
        "--batch-size", "8", "--workers", "0", "--score-threshold", "0.0",
        "--run-dir", str(run_dir), "--register", "wide-det", "--alias", "champion"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    client = MlflowClient(uri)
    run_id = client.search_runs(client.search_experiments()[0].experiment_id)[0].info.run_id
    logged = client.get_run(run_id).data.metrics

    best = run_dir / "checkpoints" / "best.keras"
    result = CliRunner().invoke(main, ["evaluate", "--model", str(best), "--data", str(voc),
                                       "--split", "test", "--batch-size", "8",
                                       "--format", "json"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    report = json.loads(result.output[result.output.index("{"):])
    assert report["images"] == 6
    for stat, name in TEST_METRICS.items():
        assert abs(report[stat] - logged[f"test_{name}"]) <= 1e-9, (stat, report[stat])
    # After one epoch the scores may all be 0; the detections compared are real ones.
    assert report["per_class"] and len(report["class_names"]) == 3

    photos = tmp_path / "photos"
    photos.mkdir()
    for name in sorted((voc / "JPEGImages").iterdir())[:2]:
        (photos / name.name).write_bytes(name.read_bytes())
    for model in (str(best), "models:/wide-det@champion"):
        out = tmp_path / f"detected_{len(list(tmp_path.glob('detected_*')))}"
        result = CliRunner().invoke(main, ["detect", str(photos), "--model", model,
                                           "--out", str(out), "--score-threshold", "0.0"])
        assert result.exit_code == 0, result.output + repr(result.exception)
        records = [json.loads(p.read_text()) for p in (out / "detections").glob("*.json")]
        labels = {d["category"] for r in records for d in r["detections"]}
        summary = json.loads((out / "detections.json").read_text())
        assert [c["name"] for c in summary["categories"]] == NAMES
        assert labels and labels <= set(NAMES), labels

