"""`kcv train-detector` end to end (a tiny Faster R-CNN on shapes at 64 px, one epoch)."""

import csv
import subprocess
import sys

from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from kerascv_suite.apps.cli import main

TINY_FASTER_RCNN = """\
model_options:
  rpn_channels: 16
  head_units: [16, 16]
  pool_size: 2
  rpn_pre_nms_top_k: [64, 64]
  rpn_post_nms_top_k: [16, 8]
  max_detections: 10
"""


def test_help_does_not_import_keras():
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from kerascv_suite.apps.cli import main\n"
        "r = CliRunner().invoke(main, ['train-detector', '--help'])\n"
        "assert r.exit_code == 0 and '--score-threshold' in r.output, r.output\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'jax', 'torch') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_bad_options_name_the_value(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    result = CliRunner().invoke(main, ["train-detector", "--format", "masks"])
    assert result.exit_code == 2 and "masks" in result.output
    result = CliRunner().invoke(main, ["train-detector", "--model", "lenet5", "--epochs", "1"])
    assert result.exit_code == 2 and "is a classification model" in result.output
    assert "lenet5" in result.output


def test_trains_registers_and_reports(tmp_path, monkeypatch, mlflow_uri):
    monkeypatch.chdir(tmp_path)
    uri = mlflow_uri
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(TINY_FASTER_RCNN)
    run_dir = tmp_path / "runs" / "detect" / "tiny"
    result = CliRunner().invoke(main, [
        "train-detector", "--model", "faster_rcnn_small", "--config", str(recipe),
        "--image-size", "64", "--shapes-count", "16", "--batch-size", "8", "--epochs", "1",
        "--workers", "0", "--score-threshold", "0.05", "--run-dir", str(run_dir),
        "--register", "det-tiny", "--alias", "champion"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "test AP" in result.output and "Registered det-tiny version 1" in result.output
    with open(run_dir / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1 and rows[0]["val_ap50"] != ""
    assert (run_dir / "config.yaml").read_text().count("score_threshold: 0.05") == 1
    version = MlflowClient(uri).get_model_version_by_alias("det-tiny", "champion")
    assert str(version.version) == "1"
