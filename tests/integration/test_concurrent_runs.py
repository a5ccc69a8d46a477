"""Two `kcv train` started at once in one project directory, on a fresh sqlite `mlflow.db`:
two intact run folders (`lenet5`, `lenet5-2`), two MLflow runs with their own metrics; and a
run folder in use by a live process is refused, by `--run-dir` and by `--resume`.

Before the fix both wrote runs/train/lenet5 (config.yaml of one run, results.csv of the
other), and the second process died creating the store's tables ("duplicate column name:
step") with a message calling the store a dead server.
"""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from kerascv_suite.apps.cli import main
from kerascv_suite.training.run_lock import LOCK_FILE
from kerascv_suite.training.state import stale_temp_files
from kerascv_suite.training.tracking import EXPERIMENT_KIND, EXPERIMENT_KIND_TAG

KCV = [sys.executable, "-c", "from kerascv_suite.apps.cli import main; main()"]
TRAIN = ["train", "--model", "lenet5", "--epochs", "1", "--batch-size", "256", "--workers", "0"]


def _wait_for(path, processes, limit=300):
    deadline = time.monotonic() + limit
    while not path.exists():
        assert all(p.poll() is None for p in processes), [p.communicate() for p in processes]
        assert time.monotonic() < deadline, f"{path} did not appear in {limit} s"
        time.sleep(0.05)


@pytest.mark.slow
def test_two_runs_at_once_get_their_own_folders_and_mlflow_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    processes = [subprocess.Popen(KCV + TRAIN + ["--seed", str(seed)], cwd=tmp_path,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for seed in (1, 2)]
    try:
        # Hold the first run still while it owns its folder: in use by a live process.
        first = tmp_path / "runs" / "train" / "lenet5"
        _wait_for(first / "config.yaml", processes)  # written under the lock
        holder = json.loads((first / LOCK_FILE).read_text())["pid"]
        owner = next(p for p in processes if p.pid == holder)
        owner.send_signal(signal.SIGSTOP)
        try:
            for args in (TRAIN + ["--run-dir", str(first)], ["train", "--resume", str(first)]):
                refused = CliRunner().invoke(main, args)
                assert refused.exit_code == 1, refused.output
                message = refused.output.strip().splitlines()[-1]
                assert str(first) in message and f"process {holder}" in message, message
        finally:
            owner.send_signal(signal.SIGCONT)
        outputs = [p.communicate(timeout=600)[0] for p in processes]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
    for p, output in zip(processes, outputs):
        assert p.returncode == 0, output
        assert "does not answer" not in output and "Start the server" not in output

    folders = sorted((tmp_path / "runs" / "train").iterdir())
    assert [f.name for f in folders] == ["lenet5", "lenet5-2"]
    client = MlflowClient(uri)
    seen = {}
    for folder in folders:
        seed = yaml.safe_load((folder / "config.yaml").read_text())["seed"]
        state = json.loads((folder / "checkpoints" / "state.json").read_text())
        with open(folder / "results.csv") as f:
            rows = list(csv.DictReader(f))
        assert [int(r["epoch"]) for r in rows] == [1] and state["finished"]
        assert float(rows[0]["loss"]) == pytest.approx(state["history"][0]["loss"])
        assert not (folder / LOCK_FILE).exists() and stale_temp_files(folder) == []
        run = client.get_run(state["mlflow_run_id"])
        assert run.info.status == "FINISHED" and run.data.params["seed"] == str(seed)
        assert run.data.params["run_dir"] == os.path.join("runs", "train", folder.name)
        assert run.data.metrics["loss"] == pytest.approx(float(rows[0]["loss"]))
        seen[seed] = run.data.metrics
    assert sorted(seen) == [1, 2]
    assert seen[1]["loss"] != seen[2]["loss"]  # each run logged its own training
    experiment = client.get_experiment_by_name("kcv-train")
    assert experiment.tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND
