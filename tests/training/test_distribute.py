"""distribution_scope: MirroredStrategy on 2 logical CPUs, 2 local workers, jax DataParallel.

Devices are fixed when TensorFlow / JAX initialize, so every training run happens in a fresh
subprocess that calls `configure_host_devices` first.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from kerascv_suite.training.distribute import MODES, _resolve_mode

# Trains a tiny seeded model for 2 steps inside the scope of each mode given (comma-separated,
# in one process: each process start costs seconds of imports) and prints what the test
# checks. Build, compile and fit all run inside the scope (keras.distribution shards the batch
# only while the distribution is set). Mode None trains without a distribution: the
# single-device reference, run first so that no other mode's scope precedes it.
TRAIN_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    from kerascv_suite.training.distribute import configure_host_devices, distribution_scope

    modes, devices, out = sys.argv[1].split(","), int(sys.argv[2]), sys.argv[3]
    if devices > 1:
        configure_host_devices(devices)
    import keras
    import numpy as np

    for mode in modes:
        keras.utils.set_random_seed(0)
        x = np.random.default_rng(0).normal(size=(16, 8, 8, 1)).astype("float32")
        y = (x.mean(axis=(1, 2, 3)) > 0).astype("int32")
        with distribution_scope(None if mode == "None" else mode) as dist:
            model = keras.Sequential([
                keras.Input((8, 8, 1)),
                keras.layers.Conv2D(4, 3, activation="relu"),
                keras.layers.GlobalAveragePooling2D(),
                keras.layers.Dense(2, activation="softmax"),
            ])
            model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
            history = model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
        np.savez(f"{out}.{mode}.npz", *model.get_weights())
        print("RESULT " + json.dumps({
            "asked": mode,
            "mode": dist.mode,
            "replicas": dist.num_replicas,
            "chief": dist.is_chief,
            "loss": float(history.history["loss"][-1]),
        }))
    """
)


def _env(backend, **extra):
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CONFIG", "XLA_FLAGS")}
    env.update(KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2", **extra)
    return env


def _results(stdout):
    lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, stdout
    return [json.loads(line[len("RESULT "):]) for line in lines]


def _train(tmp_path, backend, modes, devices, name="w"):
    """Runs TRAIN_SCRIPT for `modes` in one process: {mode: (result, weights)}."""
    out = tmp_path / name
    proc = subprocess.run(
        [sys.executable, "-c", TRAIN_SCRIPT, ",".join(modes), str(devices), str(out)],
        env=_env(backend), capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = _results(proc.stdout)
    assert [r["asked"] for r in results] == list(modes), proc.stdout
    return {r["asked"]: (r, np.load(f"{out}.{r['asked']}.npz")) for r in results}


@pytest.fixture(scope="module")
def tensorflow_runs(tmp_path_factory):
    """One process with 2 logical CPUs: the single-device reference, mirrored and auto."""
    return _train(tmp_path_factory.mktemp("tf"), "tensorflow", ("None", "mirrored", "auto"), 2)


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.mark.slow
def test_mirrored_on_two_logical_cpus(tensorflow_runs):
    result, weights = tensorflow_runs["mirrored"]
    assert result["mode"] == "mirrored"
    assert result["replicas"] == 2
    assert np.isfinite(result["loss"])
    # The same global batch on one device gives the same update: mirrored replicas average
    # their gradients over the global batch.
    single, single_weights = tensorflow_runs["None"]
    assert (single["mode"], single["replicas"]) == (None, 1)
    for key in weights.files:
        np.testing.assert_allclose(weights[key], single_weights[key], atol=1e-5)


@pytest.mark.slow
def test_multi_worker_two_local_processes(tmp_path, tensorflow_runs):
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    procs = []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        procs.append(subprocess.Popen(
            [sys.executable, "-c", TRAIN_SCRIPT, "multi_worker", "1", str(tmp_path / f"w{index}")],
            env=_env("tensorflow", TF_CONFIG=json.dumps(tf_config)),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        ))
    outputs = []
    try:
        for proc in procs:
            stdout, stderr = proc.communicate(timeout=300)
            assert proc.returncode == 0, stderr[-3000:]
            outputs.extend(_results(stdout))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    assert [o["replicas"] for o in outputs] == [2, 2]
    assert [o["chief"] for o in outputs] == [True, False]
    first, second = (np.load(tmp_path / f"w{i}.multi_worker.npz") for i in range(2))
    _, single = tensorflow_runs["None"]
    for key in first.files:
        np.testing.assert_allclose(first[key], second[key], atol=1e-6)
        # Each worker takes half of every global batch; the all-reduced update equals the
        # single-process one.
        np.testing.assert_allclose(first[key], single[key], atol=1e-5)


@pytest.mark.slow
def test_jax_data_parallel_on_two_host_devices(tmp_path):
    runs = _train(tmp_path, "jax", ("None", "data_parallel"), 2)
    result, weights = runs["data_parallel"]
    assert result["mode"] == "data_parallel"
    assert result["replicas"] == 2
    single, single_weights = runs["None"]
    assert (single["mode"], single["replicas"]) == (None, 1)
    for key in weights.files:
        np.testing.assert_allclose(weights[key], single_weights[key], atol=1e-5)


@pytest.mark.slow
def test_auto_picks_by_backend(tensorflow_runs):
    result, _ = tensorflow_runs["auto"]
    assert (result["mode"], result["replicas"]) == ("mirrored", 2)


@pytest.mark.parametrize(
    "mode, backend, message",
    [
        ("mirrored", "jax", "needs the tensorflow backend"),
        ("multi_worker", "torch", "needs the tensorflow backend"),
        ("data_parallel", "tensorflow", "needs the jax backend"),
        ("auto", "torch", "backend='torch'"),
        ("ring", "tensorflow", "mode='ring'"),
    ],
)
def test_modes_that_do_not_fit_the_backend(mode, backend, message):
    with pytest.raises(ValueError, match=message):
        _resolve_mode(mode, backend)


def test_auto_resolution(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert _resolve_mode("auto", "tensorflow") == "mirrored"
    assert _resolve_mode("auto", "jax") == "data_parallel"
    monkeypatch.setenv("TF_CONFIG", "{}")
    assert _resolve_mode("auto", "tensorflow") == "multi_worker"
    assert None in MODES


def test_multi_worker_needs_tf_config(monkeypatch):
    from kerascv_suite.training import distribute

    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="TF_CONFIG unset"):
        distribute._multi_worker_strategy(None)
    monkeypatch.setenv("TF_CONFIG", "not json")
    with pytest.raises(ValueError, match="not json"):
        distribute._multi_worker_strategy(None)


@pytest.mark.skipif(os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow",
                    reason="MirroredStrategy runs on the tensorflow backend")
def test_mirrored_on_one_device_warns_and_still_trains():
    import tensorflow as tf

    from kerascv_suite.training.distribute import distribution_scope

    if len(tf.config.list_logical_devices("CPU")) + len(tf.config.list_logical_devices("GPU")) != 1:
        pytest.skip("this process has several devices")
    with pytest.warns(UserWarning, match="one device"):
        with distribution_scope("mirrored") as dist:
            assert dist.num_replicas == 1


# `kcv train` in a process whose CPU was split into 2 devices first; the scope is wrapped to
# report how many replicas the pipeline trained on.
CLI_SCRIPT = textwrap.dedent(
    """
    import contextlib, sys
    from kerascv_suite.training import distribute

    distribute.configure_host_devices(2)
    original = distribute.distribution_scope

    @contextlib.contextmanager
    def reporting_scope(mode=None):
        with original(mode) as dist:
            print(f"REPLICAS {dist.mode} {dist.num_replicas}", flush=True)
            yield dist

    distribute.distribution_scope = reporting_scope
    from kerascv_suite.apps.cli import main

    main(sys.argv[1:])
    """
)


@pytest.mark.slow
def test_kcv_train_distribute_mirrored_end_to_end(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", CLI_SCRIPT, "train", "--model", "lenet5", "--epochs", "1",
         "--distribute", "mirrored", "--workers", "0", "--run-dir", str(tmp_path / "run")],
        cwd=tmp_path, env=_env("tensorflow"), capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "REPLICAS mirrored 2" in proc.stdout
    assert "Test: test_accuracy" in proc.stdout
    assert (tmp_path / "run" / "checkpoints").is_dir()


@pytest.mark.slow
def test_kcv_train_multi_worker_end_to_end(tmp_path):
    """`kcv train --distribute multi_worker` as 2 local worker processes (TF_CONFIG on
    loopback): both train in lockstep; only the chief (worker 0) writes the run folder, the
    MLflow run and the report; the other worker's scratch folder is removed."""
    from mlflow.tracking import MlflowClient

    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    args = [sys.executable, "-c", "from kerascv_suite.apps.cli import main; main()",
            "train", "--model", "lenet5",
            "--epochs", "1", "--distribute", "multi_worker", "--workers", "0",
            "--run-dir", "run"]
    procs = []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        procs.append(subprocess.Popen(
            args, cwd=tmp_path, env=_env("tensorflow", TF_CONFIG=json.dumps(tf_config)),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = []
    try:
        for proc in procs:
            stdout, _ = proc.communicate(timeout=400)
            assert proc.returncode == 0, stdout[-4000:]
            outputs.append(stdout)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    chief, worker = outputs
    assert "Test: test_accuracy" in chief and "Test:" not in worker
    assert "Worker done" in worker
    scratch = next(line for line in worker.splitlines() if "writing to scratch" in line)
    assert not os.path.exists(scratch.split("scratch ")[1].split(";")[0])
    with open(tmp_path / "run" / "results.csv") as f:
        rows = f.read().splitlines()
    assert rows[0].startswith("epoch,") and [r.split(",")[0] for r in rows[1:]] == ["1"]
    # One MLflow run in the working directory's default store: the chief's. (A client, not
    # mlflow.set_tracking_uri: the process-wide URI would leak into later tests.)
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("kcv-train")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert runs[0].data.metrics["test_accuracy"] > 0.5
