"""The runner with the classification task against a real MLflow store: logging, registry,
fine-tuning, probe."""

import time

import keras
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from kerascv_suite.models import build
from kerascv_suite.models.resolve import get_model
from kerascv_suite.tasks import get_task, load_config, load_run_config
from kerascv_suite.training import runner
from kerascv_suite.training.errors import TrackingUnavailable
from tests.training.helpers import closed_port, make_color_folders

MODEL = "nin_cifar"  # small RGB model with a 32x32 reference input


@pytest.fixture
def workdir(tmp_path, monkeypatch, mlflow_uri):
    monkeypatch.chdir(tmp_path)
    make_color_folders(tmp_path / "colors")
    return tmp_path


def _config(workdir, **overrides):
    values = dict(model=MODEL, data=str(workdir / "colors"), epochs=1, batch_size=8,
                  workers=0, augment=None, schedule="constant", lr=1e-3,
                  tracking_uri=f"sqlite:///{workdir}/mlflow.db")
    values.update(overrides)
    return load_config(None, **values)


def run(config, **kwargs):
    return runner.run(get_task(config.task), config, **kwargs)


def test_unreachable_tracking_server_fails_before_training(workdir):
    uri = f"http://127.0.0.1:{closed_port()}"
    start = time.monotonic()
    with pytest.raises(TrackingUnavailable, match=f"{uri}.*unreachable.*nothing was trained"):
        run(_config(workdir, tracking_uri=uri), log=lambda *_: None)
    assert time.monotonic() - start < 15
    assert not (workdir / "runs").exists()


@pytest.mark.slow
def test_run_logs_everything_and_registers_with_an_alias(workdir):
    result = run(_config(workdir, register="colors-nin", alias="champion"),
                 log=lambda *_: None)
    client = MlflowClient(f"sqlite:///{workdir}/mlflow.db")
    logged = client.get_run(result.mlflow_run_id)
    assert logged.info.status == "FINISHED"
    assert logged.data.params["model"] == MODEL and logged.data.params["lr"] == "0.001"
    assert logged.data.tags["system.backend"] == keras.backend.backend()
    assert {"accuracy", "loss", "val_accuracy", "test_accuracy"} <= set(logged.data.metrics)
    artifacts = {a.path for a in client.list_artifacts(result.mlflow_run_id, "report")}
    assert artifacts == {"report/training_curves.png", "report/confusion_matrix.png",
                         "report/sample_predictions.png", "report/model_summary.txt"}
    assert {"config.yaml", "results.csv"} <= {
        a.path for a in client.list_artifacts(result.mlflow_run_id)}

    registered = get_model("models:/colors-nin@champion")
    images = np.zeros((2, 32, 32, 3), np.uint8)
    assert registered.predict(images, verbose=0).shape == (2, 3)

    # A second registration adds version 2 and moves the alias; version 1 stays.
    again = run(_config(workdir, register="colors-nin", alias="champion"), log=lambda *_: None)
    assert (result.registered_version, again.registered_version) == ("1", "2")
    versions = {str(v.version) for v in client.search_model_versions("name='colors-nin'")}
    assert versions == {"1", "2"}
    assert str(client.get_model_version_by_alias("colors-nin", "champion").version) == "2"


@pytest.mark.slow
def test_fine_tuning_replaces_the_head_and_runs_two_phases(workdir):
    pretrained = build(MODEL, num_classes=10, input_shape=(32, 32, 3))
    pretrained.save(workdir / "pretrained.keras")
    result = run(_config(workdir, weights=str(workdir / "pretrained.keras"), freeze="backbone",
                         epochs=2, head_epochs=1, lr=1e-3), log=lambda *_: None)
    lrs = [row["lr"] for row in result.history]
    # Phase 2 trains everything at lr * finetune_lr_factor (0.1).
    assert lrs == pytest.approx([1e-3, 1e-4])
    final = keras.saving.load_model(result.run_dir / "checkpoints" / "last.keras")
    assert final.output_shape == (None, 3)
    assert all(layer.trainable for layer in final.layers)


def test_grayscale_digits_reach_lenet5_as_one_channel_through_workers(workdir):
    config = load_config(None, model="lenet5", workers=2, batch_size=64)
    data = get_task("classification").load_data(config, workdir / "run", print)
    try:
        assert data.train_loader.num_workers == 2
        assert data.train.element_spec[0].shape.as_list() == [None, 32, 32, 1]
        images, labels = next(iter(data.train))
        assert images.shape == (64, 32, 32, 1) and labels.shape == (64,)
        # Nothing repeats gray to RGB any more: the loaders carry one channel from the start.
        assert data.loaders["val"].element_spec()["images"][0] == (None, 32, 32, 1)
        assert data.splits["test"][0]["image"].shape == (32, 32, 1)
    finally:
        data.close()


def test_extending_a_finished_run_continues_on_a_schedule_over_the_new_total(workdir):
    first = run(_config(workdir, epochs=2, schedule="cosine", lr=0.01), log=lambda *_: None)
    # Cosine over 2 epochs: the rate reaches 0 at the end of epoch 2.
    assert first.history[-1]["lr"] < 1e-6
    config = load_run_config(first.run_dir, epochs=4)
    extended = run(config, resume=True, log=lambda *_: None)
    assert [row["epoch"] for row in extended.history] == [1, 2, 3, 4]
    # Cosine over 4 epochs of 3 steps (24 images / 8), read after each epoch: at step 9 of 12
    # lr = 0.01 * (1 + cos(pi * 9 / 12)) / 2 = 0.001464 (keras CosineDecay, alpha 0).
    np.testing.assert_allclose(extended.history[2]["lr"], 0.01 * (1 + np.cos(np.pi * 0.75)) / 2,
                               rtol=1e-4)
