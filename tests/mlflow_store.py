"""Copies of one migrated MLflow SQLite store, for tests that give `kcv` a tracking URI.

Opening a new `sqlite:///.../mlflow.db` makes MLflow run its whole schema migration chain
(about 50 Alembic steps: 3-5 s on a quiet 2-core machine, 12-18 s at load 9), once per test
that starts from an empty store. The tests here check what `kcv` writes into a store, not
MLflow's migrations, so they start from a copy of a store migrated once per session: the same
file a fresh store would be after its first open (tables at the head revision, the Default
experiment), made by the same MLflow. Tests of store creation itself (tests/training/
test_tracking_store.py, two `kcv train` racing on a fresh store in tests/integration/
test_concurrent_runs.py, the default `mlflow.db` of the working directory) keep empty stores.
"""

import shutil
import sqlite3
from pathlib import Path


def migrated_store(folder):
    """Creates `folder/mlflow.db`, a store at MLflow's head schema, and returns `folder`.

    Args:
        folder: an empty directory (the session's template folder).
    """
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    folder = Path(folder)
    store = SqlAlchemyStore(f"sqlite:///{folder}/mlflow.db", str(folder / "mlruns"))
    store.engine.dispose()
    return folder


def copy_store(template, folder, name="mlflow.db"):
    """Copies the template store to `folder/name` and returns its `sqlite:///` URI.

    The Default experiment's artifact location, written when the template was created,
    moves from the template's folder to `folder`, where a store created there would put it.

    Args:
        template: a folder made by `migrated_store`.
        folder: the test's directory.
        name: the database file name.
    """
    template, folder = Path(template), Path(folder)
    target = folder / name
    if target.exists():
        raise FileExistsError(f"{target} exists; copy the template store into a new path")
    shutil.copyfile(template / "mlflow.db", target)
    with sqlite3.connect(target) as db:
        db.execute("UPDATE experiments SET artifact_location = "
                   "replace(artifact_location, ?, ?)", (str(template), str(folder)))
    db.close()
    return f"sqlite:///{target}"
