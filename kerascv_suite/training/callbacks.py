"""Callbacks of the training engine: divergence guard and per-epoch checkpointing."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import keras
import numpy as np

from kerascv_suite.training.state import (BEST, LAST, RESULTS, EpochCommit, checkpoint_dir,
                                          results_csv)


def _to_float(value):
    return float(np.asarray(keras.ops.convert_to_numpy(value)))


class NanGuard(keras.callbacks.Callback):
    """Stops training at the first batch whose loss is not finite, remembering where.

    Unlike `keras.callbacks.TerminateOnNaN` it records the epoch and batch, so the engine can
    skip the checkpoint of the broken epoch and say exactly where training diverged.
    """

    def __init__(self):
        super().__init__()
        self.epoch = 0
        self.tripped_at = None  # (epoch, batch, loss), 1-based epoch

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.tripped_at is not None or not logs or "loss" not in logs:
            return
        loss = _to_float(logs["loss"])
        if not math.isfinite(loss):
            self.tripped_at = (self.epoch + 1, batch, loss)
            self.model.stop_training = True


class EpochCheckpoint(keras.callbacks.Callback):
    """After each finished epoch: last/best checkpoints, `results.csv` and `state.json`,
    committed together (see `kerascv_suite.training.state.EpochCommit`), then the hook.

    The checkpoints and results are written under temporary names and `state.json` is
    renamed over the old one last: a `kill -9` at any instant leaves either the previous or
    this epoch committed, never a checkpoint of one epoch with the state of another.
    `on_epoch(row)` (e.g. MLflow logging) runs only after the commit; the runner re-sends
    rows that the hook may have missed when a run resumes.

    Args:
        run_dir: the run folder.
        state: the `RunState` to update and save.
        monitor: metric that picks `best.keras` (e.g. `"val_accuracy"`); falls back to the
            training metric of the same name when there is no validation data.
        mode: `"max"` or `"min"`.
        patience: stop after this many epochs without improvement (None or 0: never).
        nan_guard: the `NanGuard`; a tripped guard means the epoch is not saved.
        on_epoch: optional callable receiving the epoch's row (a dict with `"epoch"`).
        phase: the training phase stored in the state (fine-tuning has two).
    """

    def __init__(self, run_dir, state, monitor="val_accuracy", mode="max", patience=None,
                 nan_guard=None, on_epoch=None, phase=1):
        super().__init__()
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min'. Received: mode={mode!r}")
        self.run_dir = Path(run_dir)
        self.state = state
        self.monitor = monitor
        self.mode = mode
        self.patience = patience
        self.nan_guard = nan_guard
        self.on_epoch = on_epoch
        self.phase = phase
        self.early_stopped = False

    def _improved(self, value):
        if value is None or not math.isfinite(value):
            return False
        best = self.state.best
        return best is None or (value > best if self.mode == "max" else value < best)

    def _learning_rate(self):
        optimizer = self.model.optimizer
        return _to_float(optimizer.learning_rate) if optimizer is not None else None

    def on_epoch_end(self, epoch, logs=None):
        if self.nan_guard is not None and self.nan_guard.tripped_at is not None:
            return
        row = {"epoch": epoch + 1}
        row.update({k: _to_float(v) for k, v in (logs or {}).items()})
        lr = self._learning_rate()
        if lr is not None:
            row["lr"] = lr
        # The next state is built aside: until its commit, `self.state` stays the committed
        # one (an error while writing leaves nothing half-updated).
        state = dataclasses.replace(self.state, history=list(self.state.history))
        folder = checkpoint_dir(self.run_dir)
        with EpochCommit(self.run_dir, epoch + 1) as commit:
            with commit.stage(folder / LAST, point="last") as tmp:
                self.model.save(tmp)
            value = row.get(self.monitor, row.get(self.monitor.removeprefix("val_")))
            if self._improved(value):
                with commit.stage(folder / BEST, point="best") as tmp:
                    self.model.save(tmp)
                state.best, state.best_epoch = value, epoch + 1
            # A rerun epoch replaces any row of the same number (never twice in results.csv).
            state.history = [r for r in state.history if r["epoch"] <= epoch] + [row]
            state.epoch = epoch + 1
            state.phase = self.phase
            if self.patience and epoch + 1 - (state.best_epoch or 0) >= self.patience:
                state.early_stopped = True
            with commit.stage(self.run_dir / RESULTS, point="results") as tmp:
                with open(tmp, "w", encoding="utf-8") as f:
                    f.write(results_csv(state.history))
            commit.commit(state)
        for field in dataclasses.fields(state):
            setattr(self.state, field.name, getattr(state, field.name))
        if self.on_epoch is not None:
            self.on_epoch(row)
        if state.early_stopped:
            self.early_stopped = True
            self.model.stop_training = True
