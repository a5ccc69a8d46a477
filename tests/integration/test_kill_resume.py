"""`kill -9` of a real `kcv train` at every write point of an epoch, then `--resume`: the
result equals an uninterrupted run (results.csv rows and learning rates, optimizer
iterations) and no temporary file is left.

The kills are deterministic through the test hook `KCV_FAULT_AT=<point>:<epoch>` (see
`kerascv_suite.training.state.fault_point`): at that write point the process cuts the file
it is writing to half its size, as a kill mid-write leaves it, and SIGKILLs itself. One
chain of processes covers every write point (`--epochs 2`, each process trains one epoch):

    train        KCV_FAULT_AT=best:1     last.keras of epoch 1 staged, best.keras half written
    --resume     KCV_FAULT_AT=commit:1   state.json of epoch 1 renamed (the commit point), the
                                         checkpoints and results.csv not yet moved in
    --resume     KCV_FAULT_AT=last:2     (epoch 1 finished by recovery) last.keras half written
    --resume     KCV_FAULT_AT=results:2  results.csv half written
    --resume     (in-process)            trains epoch 2, evaluates, logs the model

A kill while state.json's temporary is written (`state`) leaves the same committed epoch as
`results`; it is covered with every other point, in one process, by
tests/training/test_atomic_commit.py (each process start here costs ~10 s of imports).

The reference is the same command uninterrupted (in-process: this process has Keras loaded).
This replaces tests/apps/test_train_cmd.py::test_resume_after_kill_loses_no_epoch, whose
kill landed between epochs only.
"""

import csv
import json
import os
import signal
import subprocess
import sys

import keras
import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from kerascv_suite.apps.cli import main
from kerascv_suite.training.run_lock import LOCK_FILE
from kerascv_suite.training.state import stale_temp_files

KCV = [sys.executable, "-c", "from kerascv_suite.apps.cli import main; main()"]
TRAIN = ["train", "--model", "lenet5", "--epochs", "2", "--batch-size", "256", "--workers", "0"]
STEPS = 5  # ceil(1257 training digits / 256)


@pytest.fixture
def workdir(tmp_path, monkeypatch, mlflow_uri):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    return tmp_path


def _state(run_dir):
    return json.loads((run_dir / "checkpoints" / "state.json").read_text())


def _rows(run_dir):
    with open(run_dir / "results.csv") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _killed(args, fault, cwd):
    """Runs `kcv` with `KCV_FAULT_AT=fault` and checks that it died by SIGKILL."""
    env = {**os.environ, "KCV_FAULT_AT": fault}
    process = subprocess.run(KCV + args, cwd=cwd, env=env, capture_output=True, text=True,
                             timeout=300)
    assert process.returncode == -signal.SIGKILL, (fault, process.stdout + process.stderr)
    return process.stdout


def _temp_names(run_dir):
    return sorted(p.name.split(".")[1] for p in stale_temp_files(run_dir))


@pytest.mark.slow
def test_kill_at_every_write_point_then_resume_equals_an_uninterrupted_run(workdir):
    run_dir = workdir / "runs" / "train" / "killed"
    resume = ["train", "--resume", str(run_dir)]

    _killed(TRAIN + ["--run-dir", str(run_dir)], "best:1", workdir)
    assert _state(run_dir)["epoch"] == 0  # nothing committed, the MLflow run id saved
    assert _temp_names(run_dir) == ["best", "last"]
    assert not (run_dir / "checkpoints" / "last.keras").exists()

    out = _killed(resume, "commit:1", workdir)
    assert "after epoch 0" in out
    state = _state(run_dir)
    assert state["epoch"] == 1 and sorted(state["pending"]) == [
        "checkpoints/best.keras", "checkpoints/last.keras", "results.csv"]
    assert not (run_dir / "checkpoints" / "last.keras").exists()  # not moved in yet

    out = _killed(resume, "last:2", workdir)
    assert "after epoch 1" in out  # the committed epoch was finished, not retrained
    assert _state(run_dir)["epoch"] == 1 and _temp_names(run_dir) == ["last"]
    assert [row["epoch"] for row in _rows(run_dir)] == [1]

    _killed(resume, "results:2", workdir)
    assert _state(run_dir)["epoch"] == 1
    assert {"last", "results"} <= set(_temp_names(run_dir))  # and best, if epoch 2 improved

    resumed = CliRunner().invoke(main, resume)
    assert resumed.exit_code == 0, resumed.output
    assert "after epoch 1" in resumed.output
    reference_dir = workdir / "runs" / "train" / "reference"
    reference = CliRunner().invoke(main, TRAIN + ["--run-dir", str(reference_dir)])
    assert reference.exit_code == 0, reference.output

    # The resumed run is the uninterrupted one: rows, learning rates and metrics.
    rows, expected = _rows(run_dir), _rows(reference_dir)
    assert [row["epoch"] for row in rows] == [1, 2]
    assert [row["lr"] for row in rows] == pytest.approx([row["lr"] for row in expected])
    for row, want in zip(rows, expected):
        assert row == pytest.approx(want, rel=1e-4, abs=1e-4)
    for folder in (run_dir, reference_dir):
        last = keras.saving.load_model(folder / "checkpoints" / "last.keras")
        assert int(last.optimizer.iterations) == 2 * STEPS
    state = _state(run_dir)
    assert state["epoch"] == 2 and state["finished"] and state["pending"] == {}
    assert stale_temp_files(run_dir) == [] and not (run_dir / LOCK_FILE).exists()

    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    steps = sorted(m.step for m in client.get_metric_history(state["mlflow_run_id"], "loss"))
    assert steps == [1, 2]  # every epoch logged once, across five processes
    assert "test_accuracy" in client.get_run(state["mlflow_run_id"]).data.metrics
