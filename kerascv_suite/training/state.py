"""The run folder: atomic writes, `state.json` and `results.csv`.

Layout (in the spirit of ultralytics' `runs/train/<name>/`):

    config.yaml              the full resolved config
    results.csv              one row per finished epoch
    checkpoints/last.keras   model + optimizer state after the last finished epoch
    checkpoints/best.keras   the best epoch so far (by the monitored metric)
    checkpoints/state.json   epoch, per-epoch history, best value, MLflow run id
    plots/                   curves, confusion matrix, sample predictions

Every file is written to a temporary name in the same folder and moved into place with
`os.replace`, which is atomic on POSIX: a `kill -9` at any moment leaves either the previous
or the new version, never a half-written one.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

STATE_FILE = "state.json"
LAST = "last.keras"
BEST = "best.keras"


@contextlib.contextmanager
def atomic_path(path, suffix=""):
    """Yields a temporary path next to `path`; moves it onto `path` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=suffix or path.suffix,
                               dir=path.parent)
    os.close(fd)
    # mkstemp creates 0600 files; give the result the permissions a plain open() would.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_write_text(path, text: str):
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)


@dataclasses.dataclass
class RunState:
    """What `--resume` needs beyond the checkpoint itself.

    Attributes:
        epoch: number of finished epochs (the next epoch index to run).
        history: one dict of metrics per finished epoch, in order.
        best: best value of the monitored metric so far, or None.
        best_epoch: 1-based epoch of `best`.
        mlflow_run_id: the MLflow run that the resumed run continues.
        phase: the training phase of the saved checkpoint (fine-tuning: 1 head, 2 all).
        early_stopped: True once early stopping ended the training epochs.
        finished: True once the run completed (or early-stopped) and was evaluated.
    """

    epoch: int = 0
    history: list = dataclasses.field(default_factory=list)
    best: float | None = None
    best_epoch: int | None = None
    mlflow_run_id: str | None = None
    phase: int = 1
    early_stopped: bool = False
    finished: bool = False

    @classmethod
    def load(cls, run_dir) -> RunState:
        path = checkpoint_dir(run_dir) / STATE_FILE
        if not path.exists():
            return cls()
        data = json.loads(path.read_text(encoding="utf-8"))
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def save(self, run_dir):
        atomic_write_text(checkpoint_dir(run_dir) / STATE_FILE,
                          json.dumps(dataclasses.asdict(self), indent=2))


def checkpoint_dir(run_dir) -> Path:
    return Path(run_dir) / "checkpoints"


def write_results_csv(run_dir, history: list[dict[str, Any]]):
    """Rewrites `results.csv` from the history (one row per finished epoch, never twice)."""
    columns = ["epoch"]
    for row in history:
        columns += [k for k in row if k not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow(row)
    atomic_write_text(Path(run_dir) / "results.csv", buffer.getvalue())


def next_run_dir(project="runs/train", name="exp") -> Path:
    """`project/name`, or `project/name2`, `name3`... if taken (as ultralytics does)."""
    base = Path(project)
    candidate = base / name
    i = 2
    while candidate.exists():
        candidate = base / f"{name}{i}"
        i += 1
    return candidate


def latest_run_dir(project="runs/train") -> Path:
    """The most recently updated run under `project` that has a checkpoint to resume."""
    states = sorted(
        Path(project).glob(f"*/checkpoints/{STATE_FILE}"), key=lambda p: p.stat().st_mtime
    )
    if not states:
        raise FileNotFoundError(
            f"No run with a checkpoint under {str(project)!r} to resume. "
            f"Received: project={str(project)!r}"
        )
    return states[-1].parent.parent
