"""`Tracker` leaves MLflow's process-wide tracking URI as it found it."""

import mlflow
import pytest

from kerascv_suite.training.tracking import Tracker


@pytest.fixture
def clean_uri(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    mlflow.set_tracking_uri(None)
    yield
    mlflow.set_tracking_uri(None)


def test_nothing_set_stays_unset(clean_uri, tmp_path):
    tracker = Tracker(f"sqlite:///{tmp_path}/runs.db", experiment="t")
    tracker.start(run_name="a")
    assert mlflow.get_tracking_uri() == f"sqlite:///{tmp_path}/runs.db"
    tracker.end()
    assert not mlflow.is_tracking_uri_set()


def test_environment_uri_restored_and_still_read_from_the_environment(clean_uri, tmp_path,
                                                                      monkeypatch):
    theirs = f"sqlite:///{tmp_path}/theirs.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", theirs)
    tracker = Tracker(f"sqlite:///{tmp_path}/ours.db", experiment="t")
    tracker.start(run_name="a")
    tracker.end()
    assert mlflow.get_tracking_uri() == theirs
    # Not frozen into an explicit URI: a later change of the environment is seen.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/later.db")
    assert mlflow.get_tracking_uri() == f"sqlite:///{tmp_path}/later.db"


def test_store_points_the_fluent_api_at_the_tracker_for_a_block(clean_uri, tmp_path):
    # `--weights models:/...` is loaded before the run starts, from `--tracking-uri`'s store.
    tracker = Tracker(f"sqlite:///{tmp_path}/ours.db", experiment="t")
    with tracker.store():
        assert mlflow.get_tracking_uri() == f"sqlite:///{tmp_path}/ours.db"
    assert not mlflow.is_tracking_uri_set()
