"""`kcv train`: options, config precedence, NaN stop, dead server (resume after `kill -9`:
tests/integration/test_kill_resume.py)."""

import json
import os
import subprocess
import sys
import time

import keras
import pytest
import yaml
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from kerascv_suite.apps.cli import main
from tests.training.helpers import closed_port



@pytest.fixture
def workdir(tmp_path, monkeypatch, mlflow_uri):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    return tmp_path


def _invoke(*args):
    return CliRunner().invoke(main, ["train", *args])


def test_help_does_not_import_keras():
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from kerascv_suite.apps.cli import main\n"
        "r = CliRunner().invoke(main, ['train', '--help'])\n"
        "assert r.exit_code == 0 and '--resume' in r.output, r.output\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'jax', 'torch') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_bad_options_name_the_value(workdir):
    result = _invoke("--optimizer", "adagrad")
    assert result.exit_code == 2 and "adagrad" in result.output
    other = next(b for b in ("jax", "torch", "tensorflow") if b != keras.backend.backend())
    result = _invoke("--backend", other)
    assert result.exit_code == 2 and "already imported" in result.output
    result = _invoke("--resume", str(workdir / "nothing"))
    assert result.exit_code == 2 and "not a run folder" in result.output


def test_unreachable_tracking_server_fails_before_training(workdir):
    uri = f"http://127.0.0.1:{closed_port()}"
    start = time.monotonic()
    result = _invoke("--model", "lenet5", "--epochs", "1", "--tracking-uri", uri)
    assert result.exit_code == 1
    assert "unreachable" in result.output and "nothing was trained" in result.output
    assert time.monotonic() - start < 15
    assert not (workdir / "runs").exists()


@pytest.mark.slow
def test_cli_beats_config_file_beats_recipe(workdir):
    recipe = workdir / "mine.yaml"
    recipe.write_text("model: lenet5\nepochs: 1\nlr: 0.01\nbatch_size: 64\n")
    result = _invoke("--config", str(recipe), "--lr", "0.002", "--workers", "0",
                     "--run-dir", "runs/train/prec")
    assert result.exit_code == 0, result.output
    saved = yaml.safe_load((workdir / "runs/train/prec/config.yaml").read_text())
    assert (saved["lr"], saved["batch_size"], saved["epochs"]) == (0.002, 64, 1)
    assert saved["schedule"] == "warmup_cosine"  # from the lenet5_digits recipe
    assert "test_accuracy" in result.output


@pytest.mark.slow
def test_nan_loss_stops_with_a_clear_message(workdir):
    result = _invoke("--model", "lenet5", "--epochs", "2", "--optimizer", "sgd", "--lr", "1e9",
                     "--schedule", "constant", "--workers", "0", "--run-dir", "runs/train/nan")
    assert result.exit_code == 1
    assert "Loss became" in result.output and "at epoch 1, batch" in result.output
    state = json.loads((workdir / "runs/train/nan/checkpoints/state.json").read_text())
    assert state["epoch"] == 0
    run = MlflowClient(os.environ["MLFLOW_TRACKING_URI"]).get_run(state["mlflow_run_id"])
    assert run.info.status == "FAILED"


@pytest.mark.slow
def test_kcv_train_trains_a_detector_with_its_recipe_said_in_one_line(workdir):
    result = _invoke("--model", "faster_rcnn", "--epochs", "1", "--shapes-count", "8",
                     "--workers", "0", "--val-every", "1")
    assert result.exit_code == 0, result.output + repr(result.exception)
    recipe_lines = [line for line in result.output.splitlines() if line.startswith("Recipe ")]
    assert len(recipe_lines) == 1
    assert "faster_rcnn_shapes" in recipe_lines[0] and "backbone=small" in recipe_lines[0]
    assert "--recipe none" in recipe_lines[0]
    assert "test AP" in result.output and (workdir / "runs/detect/faster_rcnn").is_dir()
    saved = yaml.safe_load((workdir / "runs/detect/faster_rcnn/config.yaml").read_text())
    assert (saved["task"], saved["recipe"]) == ("detection", "faster_rcnn_shapes")


def test_options_of_another_task_are_one_line_errors(workdir):
    result = _invoke("--model", "lenet5", "--loss", "dice")
    assert result.exit_code == 2
    assert "--loss apply to segmentation models; lenet5 is a classification model" in \
        " ".join(result.output.split())
    result = CliRunner().invoke(main, ["train-segmenter", "--model", "ssd300"])
    assert result.exit_code == 2 and "ssd300 is a detection model" in result.output


def test_skips_are_counted_in_the_console_the_run_folder_and_mlflow(workdir):
    """A user's class folders with a zero-byte file and a truncated JPEG: the run trains on
    the rest and says what it skipped, in skipped.txt and as MLflow metrics."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(0)
    for name in ("zero", "one"):
        folder = workdir / "digits" / name
        folder.mkdir(parents=True)
        for i in range(8):
            cv2.imwrite(str(folder / f"{i}.png"), rng.integers(0, 255, (32, 32), np.uint8))
    (workdir / "digits" / "zero" / "empty.png").write_bytes(b"")
    ok, jpeg = cv2.imencode(".jpg", rng.integers(0, 255, (32, 32), np.uint8))
    (workdir / "digits" / "one" / "cut.jpg").write_bytes(jpeg.tobytes()[:200])
    result = _invoke("--model", "lenet5", "--data", str(workdir / "digits"), "--epochs", "1",
                     "--workers", "0", "--run-dir", "run")
    assert result.exit_code == 0, result.output
    assert "Skipped or repaired 2 entries" in result.output, result.output
    listed = (workdir / "run" / "skipped.txt").read_text()
    assert "empty.png" in listed and "cut.jpg" in listed
    client = MlflowClient()
    [run] = client.search_runs([e.experiment_id for e in client.search_experiments()])
    skipped = {k: v for k, v in run.data.metrics.items() if k.startswith("skipped_")}
    assert sum(v for k, v in skipped.items() if k.count("_") == 1) == 2, skipped
    assert any(a.path == "skipped.txt" for a in client.list_artifacts(run.info.run_id))
