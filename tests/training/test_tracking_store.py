"""The MLflow store and experiments of training runs: kcv experiments open on their runs in
MLflow 3's UI (`mlflow.experimentKind`), and a fresh sqlite store opened by several runs at
once is created once, not reported as a dead server."""

import threading

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from kerascv_suite.training.errors import TrackingUnavailable
from kerascv_suite.training.tracking import (EXPERIMENT_KIND, EXPERIMENT_KIND_TAG, Tracker,
                                             ensure_experiment, probe_store, sqlite_database)


@pytest.fixture(autouse=True)
def clean_uri(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    mlflow.set_tracking_uri(None)
    yield
    mlflow.set_tracking_uri(None)


def test_created_experiments_are_training_experiments(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracker = Tracker(uri, experiment="kcv-train")
    tracker.start(run_name="a")
    tracker.end()
    experiment = MlflowClient(uri).get_experiment_by_name("kcv-train")
    # MLflow 3's UI opens custom_model_development experiments on their runs table (its
    # GenAI pages are for genai_development); see mlflow.experimentKind in MLflow's UI.
    assert experiment.tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND == "custom_model_development"


def test_existing_experiments_get_the_kind_only_when_they_have_none(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    plain = client.create_experiment("old-kcv")
    genai = client.create_experiment("chatbot", tags={EXPERIMENT_KIND_TAG: "genai_development"})
    assert ensure_experiment(uri, "old-kcv") == plain
    assert ensure_experiment(uri, "chatbot") == genai
    assert client.get_experiment(plain).tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND
    assert client.get_experiment(genai).tags[EXPERIMENT_KIND_TAG] == "genai_development"


def test_runs_opening_a_fresh_sqlite_store_at_once_all_succeed(tmp_path):
    uri = f"sqlite:///{tmp_path}/fresh.db"
    results, start = [], threading.Barrier(3)

    def open_store():
        start.wait()
        try:
            results.append(probe_store(uri))
            results.append(ensure_experiment(uri, "kcv-train"))
        except Exception as e:  # noqa: BLE001  (collected and asserted below)
            results.append(e)

    threads = [threading.Thread(target=open_store) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    errors = [r for r in results if isinstance(r, Exception)]
    assert errors == []
    assert len(set(results) - {uri}) == 1  # one experiment, the same id for everyone


def test_sqlite_paths_and_an_unusable_store_says_what_to_check(tmp_path, monkeypatch):
    assert sqlite_database(f"sqlite:///{tmp_path}/a.db") == f"{tmp_path}/a.db"
    assert sqlite_database("http://localhost:5000") is None
    broken = tmp_path / "broken.db"
    broken.write_text("not a database")
    monkeypatch.setattr("kerascv_suite.training.tracking.SQLITE_RETRY_DELAYS", (0.0,))
    with pytest.raises(TrackingUnavailable, match="could not be opened after 2 attempts") as e:
        probe_store(f"sqlite:///{broken}")
    assert "Start the server" not in str(e.value) and str(broken) in str(e.value)
