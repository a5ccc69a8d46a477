"""The fit loop: per-epoch checkpoints, resume, NaN stop, early stopping, atomic files."""

import csv

import keras
import numpy as np
import pytest

from kerascv_suite.training import engine
from kerascv_suite.training.errors import TrainingDiverged
from kerascv_suite.training.state import RunState, atomic_write_text, latest_run_dir
from tests.training.helpers import SeparableBatches

# Checkpoints carry optimizer state and NaN detection reads backend tensors: every backend.
pytestmark = pytest.mark.backend

STEPS = 4  # SeparableBatches' batches per epoch


class _Poison(keras.callbacks.Callback):
    """Turns the weights into NaN right before one batch: the loss of that batch is NaN
    (a deterministic stand-in for an exploding step; input pipelines prefetch, so poisoning
    a batch of data cannot be aimed at an exact epoch on every backend)."""

    def __init__(self, epoch, batch):
        super().__init__()
        self.target, self.epoch = (epoch, batch), None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if (self.epoch, batch) == self.target:
            layer = self.model.get_layer("predictions")
            layer.set_weights([np.full_like(w, np.nan) for w in layer.get_weights()])


def _model():
    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(2, activation="softmax", name="predictions")(inputs)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


class _Interrupt(keras.callbacks.Callback):
    def __init__(self, after_epoch):
        super().__init__()
        self.after_epoch = after_epoch

    # At the next epoch's start: extra callbacks run before the checkpoint callback, so an
    # interrupt at `on_epoch_end` would come before the epoch is saved.
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.after_epoch:
            raise KeyboardInterrupt


def _rows(run_dir):
    with open(run_dir / "results.csv") as f:
        return list(csv.DictReader(f))


def test_checkpoints_every_epoch_and_resumes_where_it_stopped(tmp_path):
    state = RunState()
    model = _model()
    with pytest.raises(KeyboardInterrupt):
        engine.fit(model, SeparableBatches(), val_data=SeparableBatches(), epochs=4,
                   run_dir=tmp_path, state=state, callbacks=[_Interrupt(2)], verbose=0)
    saved = RunState.load(tmp_path)
    assert saved.epoch == 2 and [r["epoch"] for r in saved.history] == [1, 2]
    assert (tmp_path / "checkpoints" / "best.keras").is_file()

    resumed = keras.saving.load_model(tmp_path / "checkpoints" / "last.keras")
    # The optimizer state travels inside the .keras file.
    assert int(resumed.optimizer.iterations) == 2 * STEPS
    logged = []
    outcome = engine.fit(resumed, SeparableBatches(), val_data=SeparableBatches(), epochs=4,
                         run_dir=tmp_path, state=saved, on_epoch=logged.append, verbose=0)
    assert outcome == "completed"
    assert [row["epoch"] for row in logged] == [3, 4]
    assert [int(r["epoch"]) for r in _rows(tmp_path)] == [1, 2, 3, 4]
    assert RunState.load(tmp_path).epoch == 4
    assert int(resumed.optimizer.iterations) == 4 * STEPS
    assert latest_run_dir(tmp_path.parent) == tmp_path


def test_nan_loss_stops_naming_epoch_and_batch_and_keeps_last_good_checkpoint(tmp_path):
    state = RunState()
    model = _model()
    with pytest.raises(TrainingDiverged, match=r"epoch 2, batch 1.*last good checkpoint.*"
                                               r"last\.keras \(epoch 1\)"):
        engine.fit(model, SeparableBatches(), epochs=4, run_dir=tmp_path, state=state,
                   monitor="accuracy", callbacks=[_Poison(1, 1)], verbose=0)
    saved = RunState.load(tmp_path)
    assert saved.epoch == 1
    assert [int(r["epoch"]) for r in _rows(tmp_path)] == [1]
    good = keras.saving.load_model(tmp_path / "checkpoints" / "last.keras")
    assert all(np.isfinite(w).all() for w in good.get_weights())


def test_nan_in_first_epoch_says_there_is_no_checkpoint(tmp_path):
    with pytest.raises(TrainingDiverged, match="epoch 1, batch 0.*no checkpoint"):
        engine.fit(_model(), SeparableBatches(), epochs=2, run_dir=tmp_path, state=RunState(),
                   monitor="accuracy", callbacks=[_Poison(0, 0)], verbose=0)
    assert not (tmp_path / "checkpoints" / "last.keras").exists()


def test_early_stopping_counts_epochs_without_improvement(tmp_path):
    state = RunState()
    # val_loss of a converged model stops improving; patience 1 stops soon after.
    outcome = engine.fit(_model(), SeparableBatches(), val_data=SeparableBatches(), epochs=40,
                         run_dir=tmp_path, state=state, monitor="val_accuracy", patience=1,
                         verbose=0)
    assert outcome == "early_stopped"
    assert state.early_stopped and state.epoch == state.best_epoch + 1 < 40


def test_second_phase_prepares_once_at_its_epoch(tmp_path):
    calls = []

    def prepare(model):
        calls.append(RunState.load(tmp_path).epoch)
        model.compile(optimizer=keras.optimizers.Adam(0.005),
                      loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])

    state = RunState()
    engine.fit(_model(), SeparableBatches(), epochs=3, run_dir=tmp_path, state=state,
               second_phase=(1, prepare), monitor="accuracy", verbose=0)
    assert calls == [1]
    assert state.phase == 2 and state.epoch == 3
    assert RunState.load(tmp_path).history[-1]["lr"] == pytest.approx(0.005)


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path):
    path = tmp_path / "state.json"
    atomic_write_text(path, "old")
    with pytest.raises(RuntimeError):
        from kerascv_suite.training.state import atomic_path

        with atomic_path(path) as tmp:
            with open(tmp, "w") as f:
                f.write("half")
            raise RuntimeError("killed mid-write")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]
