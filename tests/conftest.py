"""Shared fixtures. The backend comes from KERAS_BACKEND; tests/run_matrix.py runs all three."""

import os

import keras
import pytest


def pytest_report_header(config):
    return f"keras {keras.__version__}, backend {keras.backend.backend()}"


@pytest.fixture(autouse=True)
def _seed_and_clear():
    keras.utils.set_random_seed(0)
    yield
    keras.backend.clear_session()


@pytest.fixture
def backend():
    return keras.backend.backend()


def pytest_configure(config):
    expected = os.environ.get("KERAS_BACKEND")
    if expected and keras.backend.backend() != expected:
        raise pytest.UsageError(
            f"KERAS_BACKEND={expected} but keras runs {keras.backend.backend()}"
        )
