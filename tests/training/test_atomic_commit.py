"""The epoch commit protocol (`state.EpochCommit`, `state.recover`): a kill at any write
point leaves the previous or the next epoch, never a mix, and `recover` cleans up.

A kill is emulated exactly by a copy of the run folder taken at the write point (what a
`kill -9` leaves on disk: the file being written cut to half, as `fault_point` does), so one
in-process run covers every point of every epoch; tests/integration/test_kill_resume.py
kills real processes.
"""

import csv
import shutil

import keras
import pytest

from kerascv_suite.training import engine
from kerascv_suite.training import state as run_state
from kerascv_suite.training.state import (BEST, LAST, EpochCommit, RunState, checkpoint_dir,
                                          recover, stale_temp_files)
from tests.training.helpers import SeparableBatches

STEPS, EPOCHS = 4, 3  # SeparableBatches' batches per epoch, epochs


def make_model():
    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(2, activation="softmax", name="predictions")(inputs)
    model = keras.Model(inputs, outputs)
    schedule = keras.optimizers.schedules.CosineDecay(0.05, EPOCHS * STEPS)
    model.compile(optimizer=keras.optimizers.Adam(schedule),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def rows(run_dir):
    with open(run_dir / "results.csv") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


@pytest.fixture
def killed_copies(tmp_path, monkeypatch):
    """Trains EPOCHS epochs in `tmp_path/run`, copying the folder at every write point.

    Returns:
        `(run_dir, {"best:1": copy, ...})`.
    """
    run_dir, copies = tmp_path / "run", {}

    recording = [True]

    def snapshot(point, epoch, partial=None):
        if not recording[0]:
            return  # a resumed copy training: no more copies
        copy = tmp_path / f"{point}-{epoch}"
        shutil.copytree(run_dir, copy)
        if partial is not None:
            cut = copy / partial.relative_to(run_dir)
            cut.write_bytes(cut.read_bytes()[:cut.stat().st_size // 2])
        copies[f"{point}:{epoch}"] = copy

    monkeypatch.setattr(run_state, "fault_point", snapshot)
    # monitor "loss" in mode "min": every epoch of this problem improves, so best.keras is
    # written in each one.
    engine.fit(make_model(), SeparableBatches(), epochs=EPOCHS, run_dir=run_dir, state=RunState(),
               monitor="loss", mode="min", verbose=0)
    recording[0] = False
    return run_dir, copies


def test_every_write_point_recovers_the_last_committed_epoch(killed_copies):
    run_dir, copies = killed_copies
    assert sorted(copies) == sorted(f"{p}:{e}" for p in run_state.FAULT_POINTS
                                    for e in range(1, EPOCHS + 1))
    full = rows(run_dir)
    for name, copy in copies.items():
        point, epoch = name.split(":")
        committed = int(epoch) - (point != "commit")  # only the rename commits
        assert stale_temp_files(copy), name  # the kill left temporaries behind
        state = recover(copy)
        assert state.epoch == committed and RunState.load(copy).pending == {}, name
        assert stale_temp_files(copy) == [], name
        if committed == 0:
            assert not (checkpoint_dir(copy) / LAST).exists(), name
            continue
        assert rows(copy) == full[:committed], name
        for checkpoint in (LAST, BEST):
            model = keras.saving.load_model(checkpoint_dir(copy) / checkpoint)
            assert int(model.optimizer.iterations) == committed * STEPS, (name, checkpoint)


@pytest.mark.parametrize("name", ["best:2", "commit:2"])
def test_resuming_a_killed_copy_equals_the_uninterrupted_run(killed_copies, name):
    run_dir, copies = killed_copies
    copy = copies[name]
    state = recover(copy)
    model = keras.saving.load_model(checkpoint_dir(copy) / LAST)
    engine.fit(model, SeparableBatches(), epochs=EPOCHS, run_dir=copy, state=state, monitor="loss",
               mode="min", verbose=0)
    assert int(model.optimizer.iterations) == EPOCHS * STEPS
    resumed, full = rows(copy), rows(run_dir)
    assert [r["epoch"] for r in resumed] == [1, 2, 3]
    assert [r["lr"] for r in resumed] == pytest.approx([r["lr"] for r in full])
    for row, want in zip(resumed, full):
        assert row == pytest.approx(want, rel=1e-5, abs=1e-6)


def test_a_failed_epoch_removes_its_staged_files_and_commits_nothing(tmp_path):
    RunState(epoch=1).save(tmp_path)
    with pytest.raises(OSError, match="disk full"):
        with EpochCommit(tmp_path, epoch=2) as commit:
            with commit.stage(checkpoint_dir(tmp_path) / LAST) as tmp:
                open(tmp, "w").write("weights")
            with commit.stage(tmp_path / "results.csv") as tmp:
                raise OSError("disk full")
    assert stale_temp_files(tmp_path) == []
    assert RunState.load(tmp_path).epoch == 1
    assert not (checkpoint_dir(tmp_path) / LAST).exists()


def test_recover_removes_only_the_run_folders_own_temporaries(tmp_path):
    folder = checkpoint_dir(tmp_path)
    folder.mkdir()
    ours = [folder / ".last.e0003.x1.keras", folder / ".best.ab12.keras",
            folder / ".state.e0003.q.json", tmp_path / ".results.e0003.z.csv",
            tmp_path / ".config.k.yaml"]
    theirs = [folder / "last.keras.bak", tmp_path / ".gitignore", folder / "notes.txt"]
    for path in ours + theirs:
        path.write_text("x")
    state = recover(tmp_path)
    assert state.epoch == 0
    assert [p for p in ours if p.exists()] == [] and all(p.exists() for p in theirs)


def test_a_commit_names_its_files_until_they_are_moved_in(tmp_path, monkeypatch):
    seen = {}
    monkeypatch.setattr(run_state, "fault_point", lambda point, epoch, partial=None:
                        seen.setdefault(point, RunState.load(tmp_path).pending))
    with EpochCommit(tmp_path, epoch=1) as commit:
        with commit.stage(tmp_path / "results.csv", point="results") as tmp:
            open(tmp, "w").write("epoch\n1\n")
        state = RunState(epoch=1)
        commit.commit(state)
    # At the commit point state.json names the staged file (with the epoch in its name).
    assert list(seen["commit"]) == ["results.csv"]
    assert seen["commit"]["results.csv"].startswith(".results.e0001.")
    assert seen["results"] == {}  # before the commit: the old (empty) state
    assert (tmp_path / "results.csv").read_text() == "epoch\n1\n" and state.pending == {}
