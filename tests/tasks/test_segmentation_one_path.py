"""A segmenter's end-of-training test metrics equal `kcv evaluate` on its best.keras (the
segmentation task's one evaluation path), and the saved model names its classes."""

import json

import keras
import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from kerascv_suite.apps.cli import main
from kerascv_suite.models import describe

TINY = ["--model", "unet", "--width", "0.0625", "--image-size", "32", "--batch-size", "8",
        "--shapes-count", "20", "--workers", "0", "--lr", "0.01", "--epochs", "1"]


@pytest.mark.slow
def test_training_metrics_equal_kcv_evaluate(tmp_path, monkeypatch, mlflow_uri):
    monkeypatch.chdir(tmp_path)
    uri = mlflow_uri
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    run_dir = tmp_path / "run"
    result = CliRunner().invoke(main, ["train", *TINY, "--run-dir", str(run_dir)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("kcv-train-segmenter")
    logged = client.search_runs(experiment.experiment_id)[0].data.metrics

    best = run_dir / "checkpoints" / "best.keras"
    assert describe(keras.saving.load_model(best))["class_names"] == [
        "background", "circle", "square", "triangle"]
    result = CliRunner().invoke(main, ["evaluate", "--model", str(best), "--shapes-count", "4",
                                       "--format", "json"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    report = json.loads(result.output[result.output.index("{"):])
    assert report["images"] == 4
    assert abs(report["miou"] - logged["test_miou"]) <= 1e-9
    assert abs(report["pixel_accuracy"] - logged["test_pixel_accuracy"]) <= 1e-9
    for name, iou in report["per_class_iou"].items():
        if iou == iou:
            assert abs(iou - logged[f"test_iou_{name}"]) <= 1e-9
