"""`kcv train --register` against a real `mlflow server` backed by PostgreSQL.

PostgreSQL comes from Debian's packages (.ci/run installs it): skipped locally when it is
missing, a failure under CI. Every server runs in its own process group and is stopped at
the end; the test checks that no postgres or mlflow process is left.
"""

import json
import os
import subprocess

import numpy as np
import pytest
from click.testing import CliRunner

from tests.integration.servers import (
    group_alive,
    mlflow_server,
    postgres_server,
    process_alive,
    venv_script,
)

MODEL_NAME = "kcv-it-lenet5"


def _train(tmp_path, url):
    cmd = [
        venv_script("kcv"), "train", "--model", "lenet5", "--epochs", "1", "--workers", "0",
        "--run-dir", str(tmp_path / "run"), "--register", MODEL_NAME, "--alias", "champion",
    ]
    env = {**os.environ, "MLFLOW_TRACKING_URI": url}
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=400)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def _registered_in_postgres(uri):
    """The registered model names, read straight from PostgreSQL (not through MLflow)."""
    import psycopg

    with psycopg.connect(uri) as connection:
        return [row[0] for row in connection.execute("SELECT name FROM registered_models")]


def _load_and_evaluate(tmp_path, url):
    from mlflow.tracking import MlflowClient

    from kerascv_suite.apps.cli import main
    from kerascv_suite.data.builtin.digits import load_digits
    from kerascv_suite.models.resolve import get_model

    client = MlflowClient(url)
    version = client.get_model_version_by_alias(MODEL_NAME, "champion")
    logged_accuracy = client.get_run(version.run_id).data.metrics["test_accuracy"]
    # The artifacts went through the server's proxy into its destination folder.
    assert any((tmp_path / "artifacts").rglob("*.keras")), "no model file in the artifact store"

    model = get_model(f"models:/{MODEL_NAME}@champion")
    test = load_digits("test")
    images = np.stack([s["image"] for s in test])
    labels = np.array([s["label"] for s in test])
    probabilities = model.predict(images, verbose=0)
    assert probabilities.shape == (270, 10)  # the digits test split, 10 classes
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-4)
    # The registered model is the one the run evaluated: the same test accuracy, give or
    # take one image whose two best classes tie to float precision in another batching.
    one_image = 1 / len(labels)
    accuracy = float(np.mean(probabilities.argmax(axis=1) == labels))
    assert accuracy == pytest.approx(logged_accuracy, abs=one_image)

    result = CliRunner().invoke(main, [
        "evaluate", "--model", f"models:/{MODEL_NAME}@champion", "--data", "digits",
        "--format", "json", "--out", str(tmp_path / "eval"),
    ])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["accuracy"] == pytest.approx(logged_accuracy, abs=one_image)
    assert (tmp_path / "eval" / "confusion_matrix.png").is_file()


@pytest.mark.slow
def test_train_register_load_and_evaluate_through_a_postgres_backed_server(
    tmp_path, monkeypatch
):
    import mlflow

    with postgres_server() as pg:
        with mlflow_server(pg.uri, tmp_path / "artifacts", tmp_path / "mlflow.log") as (
            url,
            server,
        ):
            _train(tmp_path, url)
            assert _registered_in_postgres(pg.uri) == [MODEL_NAME]

            monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
            mlflow.set_tracking_uri(url)
            try:
                _load_and_evaluate(tmp_path, url)
            finally:
                mlflow.set_tracking_uri(None)
    # Nothing outlives the test: the server's process group and the postmaster are gone.
    assert not group_alive(server.pid)
    assert not process_alive(pg.pid)
