"""Run folders that cannot collide: numbered atomically (`next_run_dir`), locked while a
process trains them (`RunLock`), refused before anything is written when in use."""

import json
import subprocess
import sys
import threading

import pytest

from kerascv_suite.training import runner
from kerascv_suite.training.errors import RunFolderInUse, TrackingUnavailable
from kerascv_suite.training.run_lock import LOCK_FILE, RunLock
from kerascv_suite.training.state import next_run_dir
from tests.training.helpers import closed_port


def test_run_folders_are_numbered_like_ultralytics(tmp_path):
    made = [next_run_dir(tmp_path / "runs", "lenet5") for _ in range(3)]
    assert [p.name for p in made] == ["lenet5", "lenet5-2", "lenet5-3"]
    assert all(p.is_dir() for p in made)


def test_threads_starting_at_once_never_share_a_folder(tmp_path):
    made, start = [], threading.Barrier(8)

    def make():
        start.wait()
        made.append(next_run_dir(tmp_path, "exp"))

    threads = [threading.Thread(target=make) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(p.name for p in made) == sorted(["exp"] + [f"exp-{i}" for i in range(2, 9)])


def test_a_held_lock_refuses_a_second_holder_naming_folder_and_pid(tmp_path):
    run_dir = tmp_path / "run"
    with RunLock(run_dir) as lock:
        info = json.loads(lock.path.read_text())
        assert info["pid"] == __import__("os").getpid()
        for attempt in (RunLock(run_dir).check, RunLock(run_dir).acquire):
            with pytest.raises(RunFolderInUse) as error:
                attempt()
            message = str(error.value)
            assert str(run_dir) in message and f"process {info['pid']}" in message
            assert "\n" not in message
    assert not (run_dir / LOCK_FILE).exists()  # released: the lock file is gone
    RunLock(run_dir).acquire().release()


def test_a_lock_of_a_dead_process_is_taken_over(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    pid = int(dead.stdout)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / LOCK_FILE).write_text(json.dumps({"pid": pid, "host": "here"}))
    RunLock(run_dir).check()  # no live holder: nothing raised
    with RunLock(run_dir) as lock:
        assert lock.took_over["pid"] == pid
        assert json.loads(lock.path.read_text())["pid"] != pid


def test_check_creates_nothing(tmp_path):
    RunLock(tmp_path / "new").check()
    assert not (tmp_path / "new").exists()


def _config(run_dir, tracking_uri):
    from kerascv_suite.tasks import load_config

    return load_config(model="lenet5", epochs=1, workers=0, run_dir=str(run_dir),
                       tracking_uri=tracking_uri)


def test_runner_refuses_a_folder_in_use_before_probing_or_writing(tmp_path):
    from kerascv_suite.tasks import get_task

    run_dir = tmp_path / "busy"
    dead_server = f"http://127.0.0.1:{closed_port()}"
    config = _config(run_dir, dead_server)
    with RunLock(run_dir):
        before = sorted(p.name for p in run_dir.iterdir())
        with pytest.raises(RunFolderInUse, match="in use by process"):
            runner.run(get_task(config.task), config, log=lambda *_: None)
        assert sorted(p.name for p in run_dir.iterdir()) == before == [LOCK_FILE]
    # Free, the same run gets as far as the (dead) store, and leaves no folder behind.
    with pytest.raises(TrackingUnavailable):
        runner.run(get_task(config.task), _config(tmp_path / "new", dead_server),
                   log=lambda *_: None)
    assert not (tmp_path / "new").exists()
