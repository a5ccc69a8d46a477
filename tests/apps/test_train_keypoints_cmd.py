"""`kcv train-keypoints` end to end: train, resume, register (a tiny hourglass)."""

import csv
import subprocess
import sys

import pytest
import yaml
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from kerascv_suite.apps.cli import main

TINY = {"image_size": 16, "batch_size": 8, "shapes_count": 16, "workers": 0, "lr": 0.01,
        # One stack keeps the test fast; the stacked loss is tested in tests/training.
        "model_options": {"num_stacks": 1, "filters": 8, "depth": 1}}


def _invoke(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def test_help_does_not_import_keras():
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from kerascv_suite.apps.cli import main\n"
        "r = CliRunner().invoke(main, ['train-keypoints', '--help'])\n"
        "assert r.exit_code == 0 and '--shapes-count' in r.output and '--sigma' in r.output\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'jax', 'torch') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_bad_options_name_the_value(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["train-keypoints", "--data", "./coco"])
    assert result.exit_code == 2 and "./coco" in result.output
    result = CliRunner().invoke(main, ["train-keypoints", "--sigma", "0"])
    assert result.exit_code == 2 and "--sigma" in result.output


def test_train_resume_register(tmp_path, monkeypatch, mlflow_uri):
    monkeypatch.chdir(tmp_path)
    uri = mlflow_uri
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    run_dir = tmp_path / "runs" / "keypoints" / "tiny"
    first = _invoke("train-keypoints", "--config", config, "--epochs", "1", "--run-dir", run_dir)
    assert "test PCK@0.1" in first.output
    result = _invoke("train-keypoints", "--resume", run_dir, "--epochs", "2", "--register",
                     "corners-tiny", "--alias", "champion")
    assert "Resuming" in result.output
    with open(run_dir / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1", "2"]  # resumed, no epoch twice
    client = MlflowClient(tracking_uri=uri)
    # The results.csv rows are the values logged to MLflow, epoch by epoch.
    version_run = client.get_model_version_by_alias("corners-tiny", "champion").run_id
    logged = {m.step: m.value for m in client.get_metric_history(version_run, "val_pck")}
    assert [float(r["val_pck"]) for r in rows] == pytest.approx([logged[1], logged[2]])
    version = client.get_model_version_by_alias("corners-tiny", "champion")
    run = client.get_run(version.run_id)
    assert {"val_pck", "test_pck", "test_pck_0.05", "test_pck_0.2"} <= set(run.data.metrics)
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_pck")] == [1, 2]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "report")}
    assert "report/keypoints_0.png" in artifacts and "report/curves.png" in artifacts

