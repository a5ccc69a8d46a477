"""The fit loop around `model.fit`: checkpoints every epoch, resume, NaN stop, two phases.

Example:
    >>> state = RunState.load(run_dir)
    >>> outcome = fit(model, train_ds, val_data=val_ds, epochs=20, run_dir=run_dir,
    ...               state=state)
"""

from __future__ import annotations

import sys

from kerascv_suite.training.callbacks import EpochCheckpoint, NanGuard
from kerascv_suite.training.errors import TrainingDiverged
from kerascv_suite.training.state import LAST, checkpoint_dir


def default_verbose():
    """Keras' progress bar on a terminal; one line per epoch in logs and pipes."""
    return 1 if sys.stdout.isatty() else 2


def fit(model, train_data, *, epochs, run_dir, state, val_data=None, steps_per_epoch=None,
        second_phase=None, monitor="val_accuracy", mode="max", patience=None, on_epoch=None,
        callbacks=(), verbose=None):
    """Trains `model` from `state.epoch` up to `epochs`, saving every finished epoch.

    Args:
        model: a compiled `keras.Model` (fresh, or loaded from `checkpoints/last.keras`).
        train_data: anything `model.fit` accepts (a `tf.data.Dataset` of `(images, labels)`).
        epochs: total number of epochs of the run.
        run_dir: the run folder.
        state: the `RunState` (epoch 0 for a new run); updated in place.
        val_data: validation data for `model.fit`, or None.
        steps_per_epoch: passed to `model.fit` (for endless datasets).
        second_phase: `(start_epoch, prepare)` for fine-tuning: at `start_epoch` the engine
            calls `prepare(model)`, which unfreezes and recompiles it. A checkpoint saved in
            phase 2 is already prepared, so a resumed run does not prepare twice.
        monitor, mode, patience: best-checkpoint metric and early stopping, see
            `EpochCheckpoint`.
        on_epoch: called with each finished epoch's metrics row (e.g. MLflow logging).
        callbacks: extra Keras callbacks; they run before the checkpoint callback, so the
            metrics they add to an epoch's `logs` are monitored, saved and logged.
        verbose: `model.fit` verbosity (default: `default_verbose()`).

    Returns:
        `"completed"` or `"early_stopped"`.

    Raises:
        TrainingDiverged: the loss became NaN or infinite; the message names the epoch and
            batch, and `checkpoints/last.keras` still holds the last good epoch.
    """
    verbose = default_verbose() if verbose is None else verbose
    segments = [(1, epochs)]
    if second_phase is not None and second_phase[0] < epochs:
        segments = [(1, second_phase[0]), (2, epochs)]
    for phase, end in segments:
        if state.early_stopped:
            return "early_stopped"
        if state.epoch >= end:
            continue
        if phase == 2 and state.phase < 2:
            second_phase[1](model)
        guard = NanGuard()
        checkpoint = EpochCheckpoint(run_dir, state, monitor=monitor, mode=mode,
                                     patience=patience, nan_guard=guard, on_epoch=on_epoch,
                                     phase=phase)
        # shuffle=False: the input pipeline shuffles (deterministically per epoch).
        model.fit(train_data, validation_data=val_data, initial_epoch=state.epoch, epochs=end,
                  steps_per_epoch=steps_per_epoch, shuffle=False,
                  callbacks=[guard, *callbacks, checkpoint], verbose=verbose)
        if guard.tripped_at is not None:
            raise TrainingDiverged(_diverged_message(guard.tripped_at, run_dir, state))
        if checkpoint.early_stopped:
            return "early_stopped"
    return "completed"


def _diverged_message(tripped_at, run_dir, state):
    epoch, batch, loss = tripped_at
    where = f"Loss became {loss} at epoch {epoch}, batch {batch}; training stopped."
    if state.epoch == 0:
        return where + " No epoch had finished, so there is no checkpoint to keep."
    last = checkpoint_dir(run_dir) / LAST
    return (
        f"{where} The last good checkpoint is kept: {last} (epoch {state.epoch}). "
        "Try a lower --lr, or check the data for broken samples."
    )
