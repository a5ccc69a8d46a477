"""Shared fixtures. The backend comes from KERAS_BACKEND; tests/run_matrix.py runs all three."""

import gc
import os
import runpy
from pathlib import Path

import keras
import pytest

from tests.mlflow_store import copy_store, migrated_store

# ../shared beside the repository: tools/torchvision_cpu loads torchvision (a test reference
# only) on the project's CPU torch build.
TORCHVISION_LOADER = Path(__file__).resolve().parents[2] / "shared" / "tools" / \
    "torchvision_cpu" / "load.py"


def pytest_report_header(config):
    return f"keras {keras.__version__}, backend {keras.backend.backend()}"


# A full garbage collection after every test (clear_session's default) costs 0.3-1 s each
# once TensorFlow and a few models are in memory: most of a fast test's time. Collect every
# GC_EVERY tests instead; Python's own collector runs in between as always.
GC_EVERY = 25
_tests_since_gc = [0]


@pytest.fixture(autouse=True)
def _seed_and_clear():
    keras.utils.set_random_seed(0)
    yield
    keras.backend.clear_session(free_memory=False)
    _tests_since_gc[0] += 1
    if _tests_since_gc[0] >= GC_EVERY:
        _tests_since_gc[0] = 0
        gc.collect()


@pytest.fixture
def backend():
    return keras.backend.backend()


INTEGRATION_DIR = Path(__file__).resolve().parent / "integration"


def pytest_configure(config):
    # tests/run_matrix.py runs tests/integration (real servers, browsers, kill -9) as a shard
    # of its own so that its runs pack evenly into the CI slots.
    config.addinivalue_line("markers", "integration: under tests/integration (set here)")
    expected = os.environ.get("KERAS_BACKEND")
    if expected and keras.backend.backend() != expected:
        raise pytest.UsageError(
            f"KERAS_BACKEND={expected} but keras runs {keras.backend.backend()}"
        )


def pytest_collection_modifyitems(items):
    for item in items:
        if INTEGRATION_DIR in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory):
    """A folder holding an MLflow SQLite store migrated once per session (tests/mlflow_store.py)."""
    return migrated_store(tmp_path_factory.mktemp("mlflow-template"))


@pytest.fixture
def mlflow_uri(tmp_path, mlflow_template):
    """`sqlite:///<tmp_path>/mlflow.db`: a copy of the migrated store, ready to use."""
    return copy_store(mlflow_template, tmp_path)


@pytest.fixture(scope="session")
def torchvision():
    """torchvision 0.28 on the CPU torch, through the shared loader (see its README); a
    reference for NMS, RoIAlign and weight conversion. CI fails rather than skips without it."""
    if not TORCHVISION_LOADER.exists():
        if os.environ.get("CI"):
            pytest.fail(f"CI runs need {TORCHVISION_LOADER} beside the repository")
        pytest.skip(f"no {TORCHVISION_LOADER} (the torchvision reference loader)")
    try:
        return runpy.run_path(str(TORCHVISION_LOADER))["torchvision"]
    except ImportError as error:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"torchvision is not installed ({error}): "
                    "pip install torchvision==0.28.0 --no-deps")
