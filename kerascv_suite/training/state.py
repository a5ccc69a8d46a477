"""The run folder: `state.json`, `results.csv`, and the one commit point of each epoch.

Layout (in the spirit of ultralytics' `runs/train/<name>/`):

    config.yaml              the full resolved config
    results.csv              one row per committed epoch
    kcv.lock                 the PID of the process training the folder (see `run_lock`)
    checkpoints/last.keras   model + optimizer state after the last committed epoch
    checkpoints/best.keras   the best epoch so far (by the monitored metric)
    checkpoints/state.json   epoch, per-epoch history, best value, MLflow run id
    plots/                   curves, confusion matrix, sample predictions

An epoch is committed by one atomic rename (`EpochCommit`):

1. `last.keras`, `best.keras` (when the epoch improved) and `results.csv` are written under
   temporary names (`checkpoints/.last.e0005.<random>.keras`...) and fsynced;
2. `state.json`, which names those temporary files in `pending`, is written under a temporary
   name, fsynced and renamed over the old one: **the commit point**;
3. the temporary files are renamed onto their final names.

A `kill -9` before step 2's rename leaves the previous epoch committed, and its files
untouched; after it, `recover` (run on `--resume`) finishes step 3. Either way the temporary
files left behind are removed by `recover`, and `--resume` continues from the last committed
epoch with exactly its checkpoint, optimizer iterations and results rows.

Other files (`config.yaml`, the state saved outside an epoch) are replaced atomically by
`atomic_path`: a kill leaves the old or the new version, never a half-written one.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import os
import signal
import tempfile
from pathlib import Path
from typing import Any

STATE_FILE = "state.json"
LAST = "last.keras"
BEST = "best.keras"
RESULTS = "results.csv"
# Test hook (see `fault_point`): `KCV_FAULT_AT=best:2` kills the process at that write point.
FAULT_ENV = "KCV_FAULT_AT"
FAULT_POINTS = ("last", "best", "results", "state", "commit")
# The temporary files of a run folder: `.<stem>.<anything><suffix>` (`atomic_path` and
# `EpochCommit.stage` name them so), by folder relative to the run folder.
TEMP_FILES = {"checkpoints": (("last", ".keras"), ("best", ".keras"), ("state", ".json")),
              ".": (("results", ".csv"), ("config", ".yaml"))}


def new_temp_path(path, tag="") -> Path:
    """Creates an empty temporary file next to `path` (`.<stem>.<tag><random><suffix>`),
    with the permissions a plain `open()` would give it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.{tag}", suffix=path.suffix,
                               dir=path.parent)
    os.close(fd)
    umask = os.umask(0)  # mkstemp creates 0600 files
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    return Path(tmp)


def fsync_file(path):
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def fsync_dir(path):
    """Makes the renames inside folder `path` durable (POSIX; a no-op where folders cannot
    be opened, as on Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path, suffix=""):
    """Yields a temporary path next to `path`; moves it onto `path` if the block succeeds."""
    path = Path(path)
    tmp = new_temp_path(path.with_suffix(suffix) if suffix else path)
    try:
        yield str(tmp)
        fsync_file(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_text(path, text: str):
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)


def fault_point(point, epoch, partial=None):
    """Test hook: kills this process with SIGKILL at a write point named by `KCV_FAULT_AT`.

    `KCV_FAULT_AT=<point>:<epoch>` (e.g. `best:2`) names one of `FAULT_POINTS` and a 1-based
    epoch: `last`, `best`, `results` (that staged file written, not yet fsynced), `state`
    (`state.json`'s temporary written, not renamed) and `commit` (renamed, the staged files
    not yet moved into place). The file being written (`partial`) is first cut to half its
    size, as a kill in the middle of the write leaves it. Unset, it does nothing.
    """
    if os.environ.get(FAULT_ENV) != f"{point}:{epoch}":
        return
    if partial is not None:
        os.truncate(partial, os.path.getsize(partial) // 2)
    if hasattr(signal, "SIGKILL"):
        os.kill(os.getpid(), signal.SIGKILL)
    os.abort()  # no SIGKILL (Windows): end at once, without cleanup, all the same


@dataclasses.dataclass
class RunState:
    """What `--resume` needs beyond the checkpoint itself.

    Attributes:
        epoch: number of committed epochs (the next epoch index to run).
        history: one dict of metrics per committed epoch, in order.
        best: best value of the monitored metric so far, or None.
        best_epoch: 1-based epoch of `best`.
        mlflow_run_id: the MLflow run that the resumed run continues.
        phase: the training phase of the saved checkpoint (fine-tuning: 1 head, 2 all).
        early_stopped: True once early stopping ended the training epochs.
        finished: True once the run completed (or early-stopped) and was evaluated.
        pending: the committed epoch's files still under temporary names, `{final:
            temporary}` relative to the run folder (moved into place by `apply_pending`).
    """

    epoch: int = 0
    history: list = dataclasses.field(default_factory=list)
    best: float | None = None
    best_epoch: int | None = None
    mlflow_run_id: str | None = None
    phase: int = 1
    early_stopped: bool = False
    finished: bool = False
    pending: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def load(cls, run_dir) -> RunState:
        path = checkpoint_dir(run_dir) / STATE_FILE
        if not path.exists():
            return cls()
        data = json.loads(path.read_text(encoding="utf-8"))
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)

    def save(self, run_dir):
        atomic_write_text(checkpoint_dir(run_dir) / STATE_FILE, self.to_json())


def checkpoint_dir(run_dir) -> Path:
    return Path(run_dir) / "checkpoints"


class EpochCommit:
    """The files of one epoch, staged under temporary names, committed by one rename.

    Example:
        >>> with EpochCommit(run_dir, epoch=5) as commit:
        ...     with commit.stage(checkpoint_dir(run_dir) / LAST, point="last") as tmp:
        ...         model.save(tmp)
        ...     with commit.stage(Path(run_dir) / RESULTS, point="results") as tmp:
        ...         Path(tmp).write_text(results_csv(history))
        ...     commit.commit(state)  # state.epoch == 5: the commit point

    Files staged by an epoch that fails before `commit` are removed when the block exits.

    Args:
        run_dir: the run folder.
        epoch: the 1-based epoch being committed (names the temporary files, so that a
            committed epoch's `pending` can never name a later epoch's file).
    """

    def __init__(self, run_dir, epoch):
        self.run_dir = Path(run_dir)
        self.epoch = int(epoch)
        self.staged = {}  # final -> temporary, relative to the run folder

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for tmp in self.staged.values():
            (self.run_dir / tmp).unlink(missing_ok=True)
        self.staged = {}

    @contextlib.contextmanager
    def stage(self, path, point=None):
        """Yields a temporary path (a `str`) for `path` (a file inside the run folder); the
        block writes it, then it is fsynced and staged. `point` names it for `fault_point`."""
        path = Path(path)
        tmp = new_temp_path(path, tag=f"e{self.epoch:04d}.")
        try:
            yield str(tmp)
            if point is not None:
                fault_point(point, self.epoch, partial=tmp)
            fsync_file(tmp)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self.staged[self.relative(path)] = self.relative(tmp)

    def relative(self, path) -> str:
        return Path(path).resolve().relative_to(self.run_dir.resolve()).as_posix()

    def commit(self, state: RunState):
        """Saves `state` naming the staged files (the commit point), then moves them in."""
        state.pending = dict(self.staged)
        folder = checkpoint_dir(self.run_dir)
        tmp = new_temp_path(folder / STATE_FILE, tag=f"e{self.epoch:04d}.")
        try:
            tmp.write_text(state.to_json(), encoding="utf-8")
            fault_point("state", self.epoch, partial=tmp)
            fsync_file(tmp)
            os.replace(tmp, folder / STATE_FILE)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self.staged = {}  # committed: from here on they are `state.pending`'s
        fsync_dir(folder)
        fault_point("commit", self.epoch)
        apply_pending(self.run_dir, state.pending)
        state.pending = {}


def apply_pending(run_dir, pending: dict):
    """Moves a committed epoch's staged files onto their final names (those already moved
    are skipped, so it can be redone after a kill)."""
    run_dir = Path(run_dir)
    folders = set()
    for final, tmp in pending.items():
        source = run_dir / tmp
        if source.is_file():
            os.replace(source, run_dir / final)
            folders.add((run_dir / final).parent)
    for folder in folders:
        fsync_dir(folder)


def recover(run_dir) -> RunState:
    """Finishes the last committed epoch of `run_dir` and removes every temporary file.

    Call it only while holding the run folder's lock (`run_lock.RunLock`): another process's
    temporary files would look stale.

    Returns:
        The committed `RunState` (`pending` emptied).
    """
    run_dir = Path(run_dir)
    state = RunState.load(run_dir)
    if state.pending:
        apply_pending(run_dir, state.pending)
        state.pending = {}
        state.save(run_dir)
    for path in stale_temp_files(run_dir):
        path.unlink(missing_ok=True)
    return state


def stale_temp_files(run_dir) -> list[Path]:
    """The temporary files in `run_dir` (see `TEMP_FILES`), e.g. left by a kill mid-write."""
    found = []
    for folder, names in TEMP_FILES.items():
        for stem, suffix in names:
            found += sorted((Path(run_dir) / folder).glob(f".{stem}.*{suffix}"))
    return found


def results_csv(history: list[dict[str, Any]]) -> str:
    """The text of `results.csv`: a header, then one row per epoch of `history`."""
    columns = ["epoch"]
    for row in history:
        columns += [k for k in row if k not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow(row)
    return buffer.getvalue()


def write_results_csv(run_dir, history: list[dict[str, Any]]):
    """Rewrites `results.csv` from the history (one row per epoch, never twice)."""
    atomic_write_text(Path(run_dir) / RESULTS, results_csv(history))


def next_run_dir(project="runs/train", name="exp") -> Path:
    """Creates and returns a new run folder: `project/name`, or `name-2`, `name-3`... when
    taken (as ultralytics numbers its runs).

    Each candidate is created with `os.mkdir`, which fails when it exists, so two processes
    starting at once never get the same folder.
    """
    base = Path(project)
    base.mkdir(parents=True, exist_ok=True)
    number = 1
    while True:
        candidate = base / (name if number == 1 else f"{name}-{number}")
        try:
            os.mkdir(candidate)
            return candidate
        except FileExistsError:
            number += 1


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
