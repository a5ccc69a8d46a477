"""MLflow tracking of training runs: probe, params, per-epoch metrics, artifacts, models.

The store is MLflow's own default (`sqlite:///mlflow.db` in the working directory) unless
`MLFLOW_TRACKING_URI` or an explicit `tracking_uri` says otherwise. The store is probed before
anything is trained, so an unreachable server fails in seconds, not after an hour of training.
A sqlite store is created (tables and migrations) under a lock shared by the processes of the
machine, so two runs started at once on a fresh `mlflow.db` do not race to create it.

Experiments are created tagged `mlflow.experimentKind=custom_model_development`: MLflow 3's
UI opens them on their training runs, not on its GenAI pages (traces).

Registered models are only ever added to: a new version per registration, and an alias moved
onto it. Nothing here deletes or overwrites a model version.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import socket
import tempfile
import time
from urllib.parse import urlparse

# MLflow's HTTP client retries with backoff for minutes by default; a dead server should fail
# fast. Set before mlflow reads them (it reads the environment at request time).
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "15")

from kerascv_suite.training.errors import TrackingUnavailable

try:
    import fcntl
except ImportError:  # Windows: creation is retried instead
    fcntl = None

MAX_PARAM_LENGTH = 6000  # MLflow's limit on a param value
# How MLflow 3 tells a training experiment from a GenAI one (its UI reads this tag).
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
# Seconds between attempts to open a sqlite store that another process holds or creates.
SQLITE_RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0)


def resolve_tracking_uri(tracking_uri=None):
    """The URI the run will use: the argument, `MLFLOW_TRACKING_URI`, or MLflow's default."""
    import mlflow

    if tracking_uri:
        return tracking_uri
    return mlflow.get_tracking_uri()


def sqlite_database(uri) -> str | None:
    """The absolute path of a `sqlite:///` store's file, or None for other stores."""
    if not uri.startswith("sqlite:"):
        return None
    from sqlalchemy.engine.url import make_url

    database = make_url(uri).database
    return os.path.abspath(database) if database and database != ":memory:" else None


@contextlib.contextmanager
def store_creation_lock(uri):
    """Holds an exclusive lock per sqlite store file for the processes of this machine.

    MLflow creates a fresh store's tables and migrates them in the first process that opens
    it; two processes doing so at once fail ("duplicate column name"). The lock file lives in
    the temporary folder (nothing is added next to the database); other stores need none.
    """
    database = sqlite_database(uri)
    if database is None or fcntl is None:
        yield
        return
    key = hashlib.sha1(database.encode()).hexdigest()[:16]
    path = os.path.join(tempfile.gettempdir(), f"kcv-mlflow-{key}.lock")
    with open(path, "a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def probe_store(tracking_uri=None, timeout=5.0):
    """Raises `TrackingUnavailable` unless the store answers a cheap query.

    For http(s) servers a TCP connect with `timeout` comes first, so a closed port fails
    immediately with a clear message instead of inside MLflow's retry loop. A sqlite store
    is opened (created on first use) under `store_creation_lock`, and retried with backoff
    while another process holds it.
    """
    from mlflow.tracking import MlflowClient

    uri = resolve_tracking_uri(tracking_uri)
    parsed = urlparse(uri)
    hint = "Start the server, or point --tracking-uri / MLFLOW_TRACKING_URI at a reachable store."
    if parsed.scheme in ("http", "https"):
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        try:
            with socket.create_connection((parsed.hostname, port), timeout=timeout):
                pass
        except OSError as e:
            raise TrackingUnavailable(
                f"MLflow tracking server {uri} is unreachable ({e}); nothing was trained. {hint}"
            ) from None
    database = sqlite_database(uri)
    delays = SQLITE_RETRY_DELAYS if database else ()
    for attempt in range(len(delays) + 1):
        try:
            with store_creation_lock(uri):
                MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
            return uri
        except Exception as e:  # noqa: BLE001  (any store failure means: do not train)
            error = e
            if attempt < len(delays):
                time.sleep(delays[attempt])
    if database:
        raise TrackingUnavailable(
            f"MLflow sqlite store {database} could not be opened after "
            f"{len(delays) + 1} attempts ({type(error).__name__}: {error}); nothing was "
            "trained. Check that the file is a writable MLflow database, or point "
            "--tracking-uri / MLFLOW_TRACKING_URI at another store.")
    raise TrackingUnavailable(
        f"MLflow tracking store {uri} does not answer ({type(error).__name__}: {error}); "
        f"nothing was trained. {hint}")


def ensure_experiment(tracking_uri, name) -> str:
    """The id of experiment `name`: created when missing, and tagged as a training
    experiment (`EXPERIMENT_KIND`) unless it already says what kind it is.

    Two runs creating the same experiment at once both get it.
    """
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            return client.create_experiment(name, tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
        except MlflowException:
            experiment = client.get_experiment_by_name(name)  # another run created it
            if experiment is None:
                raise
    if EXPERIMENT_KIND_TAG not in experiment.tags:
        client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG,
                                  EXPERIMENT_KIND)
    return experiment.experiment_id


def flatten(config: dict, prefix="") -> dict:
    """Nested dicts -> `{"a.b": value}` with values as MLflow-safe strings."""
    flat = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, prefix=f"{name}."))
        else:
            flat[name] = str(value)[:MAX_PARAM_LENGTH]
    return flat


def system_info() -> dict:
    """Backend, library versions, host and devices of this process."""
    import keras

    info = {
        "backend": keras.backend.backend(),
        "keras": keras.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "cpu_count": str(os.cpu_count()),
    }
    for module in ("tensorflow", "jax", "torch", "mlflow", "numpy"):
        try:
            info[module] = __import__(module).__version__
        except ImportError:
            continue
    info["device"] = _device_description(info["backend"])
    return info


def _device_description(backend):
    try:
        # The accelerator's model name ("cuda:0 NVIDIA H200"), not just its index.
        if backend == "jax":
            import jax

            return ", ".join(f"{d.platform}:{d.id} {d.device_kind}" for d in jax.devices())
        if backend == "torch":
            import torch

            return ", ".join(f"cuda:{i} {torch.cuda.get_device_name(i)}"
                             for i in range(torch.cuda.device_count())) or "cpu"
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        return ", ".join(
            f"{d.name} {tf.config.experimental.get_device_details(d).get('device_name', '')}"
            .strip() for d in gpus) or "cpu"
    except Exception as e:  # noqa: BLE001  (a description only; never fail a run over it)
        return f"unknown ({type(e).__name__})"


def _pip_requirements():
    """Keras and its backend's package, pinned (MLflow's own inference loads the model in a
    subprocess, which is slow and fails on models with custom layers)."""
    import keras

    backend = keras.backend.backend()
    module = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}.get(backend)
    requirements = [f"keras=={keras.__version__}"]
    if module:
        requirements.append(f"{module}=={__import__(module).__version__.split('+')[0]}")
    return requirements


class Tracker:
    """One MLflow run of a training job (new or resumed).

    Args:
        tracking_uri: store URI, or None for `MLFLOW_TRACKING_URI` / MLflow's default.
        experiment: experiment name (created if missing).
    """

    def __init__(self, tracking_uri=None, experiment="kcv-train"):
        self.tracking_uri = probe_store(tracking_uri)
        self.experiment = experiment
        self.run_id = None

    def start(self, run_id=None, run_name=None, tags=None):
        """Starts a new run, or continues `run_id` (a resumed training run)."""
        import mlflow

        # The fluent API (start_run, log_model) reads a process-wide URI, and setting it also
        # sets MLFLOW_TRACKING_URI; both are restored by `end` so a later run in the same
        # process (a notebook, a test) resolves its store afresh. MLflow's public getter
        # falls back to the environment: a URI equal to the environment's is restored by
        # restoring the environment (None: nothing was set with `set_tracking_uri`).
        self._saved_uri = self._point_fluent_api_here()
        mlflow.set_experiment(experiment_id=ensure_experiment(self.tracking_uri,
                                                              self.experiment))
        if mlflow.active_run() is not None:
            mlflow.end_run()
        run = mlflow.start_run(run_id=run_id, run_name=None if run_id else run_name, tags=tags)
        self.run_id = run.info.run_id
        return self.run_id

    def log_params(self, config: dict):
        import mlflow

        items = list(flatten(config).items())
        for i in range(0, len(items), 100):  # MLflow's batch limit is 100 params
            mlflow.log_params(dict(items[i:i + 100]))

    def log_system_info(self):
        import mlflow

        mlflow.set_tags({f"system.{k}": v for k, v in system_info().items()})

    def log_epoch(self, row: dict):
        """Logs one finished epoch's metrics with `step = epoch`."""
        import mlflow

        step = int(row["epoch"])
        metrics = {k: float(v) for k, v in row.items() if k != "epoch"}
        mlflow.log_metrics(metrics, step=step)

    def log_missing_epochs(self, history: list[dict]):
        """Logs the epochs of `history` that the store lacks (a kill between the checkpoint
        and the MLflow call loses nothing; no epoch is logged twice)."""
        from mlflow.tracking import MlflowClient

        if not history:
            return
        client = MlflowClient(tracking_uri=self.tracking_uri)
        key = next(k for k in history[-1] if k != "epoch")
        logged = {m.step for m in client.get_metric_history(self.run_id, key)}
        for row in history:
            if int(row["epoch"]) not in logged:
                self.log_epoch(row)

    def log_metrics(self, metrics: dict, step=None):
        import mlflow

        mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=step)

    def log_artifact(self, path, artifact_path=None):
        import mlflow

        mlflow.log_artifact(os.fspath(path), artifact_path=artifact_path)

    def log_model(self, model, sample_images, sample_outputs):
        """Logs `model` in Keras format with a signature inferred from a sample batch.

        Returns:
            The logged model's URI (`models:/m-...`).
        """
        import mlflow.keras
        from mlflow.models import infer_signature

        # A signature, not an input_example: mlflow.keras.log_model with input_example
        # crashes in MLflow 3 (it writes the example before the model folder exists).
        signature = infer_signature(sample_images, sample_outputs)
        info = mlflow.keras.log_model(model, name="model", signature=signature,
                                      pip_requirements=_pip_requirements())
        return info.model_uri

    def register(self, model_uri, name, alias=None):
        """Registers `model_uri` as a new version of `name` and points `alias` at it.

        Returns:
            The new version number (a string).
        """
        import mlflow
        from mlflow.tracking import MlflowClient

        version = mlflow.register_model(model_uri, name).version
        if alias:
            MlflowClient(tracking_uri=self.tracking_uri).set_registered_model_alias(
                name, alias, version
            )
        return str(version)

    def end(self, status="FINISHED"):
        import mlflow

        if mlflow.active_run() is not None:
            mlflow.end_run(status=status)
        saved, self._saved_uri = getattr(self, "_saved_uri", None), None
        if saved is not None:
            _restore_fluent_api(saved)

    @contextlib.contextmanager
    def store(self):
        """This tracker's store for the block, before the run starts: e.g. loading
        `--weights models:/NAME@alias` from the store given by `--tracking-uri`."""
        saved = self._point_fluent_api_here()
        try:
            yield
        finally:
            _restore_fluent_api(saved)

    def _point_fluent_api_here(self):
        """Sets the process-wide URI to this store; returns what `_restore_fluent_api` needs."""
        import mlflow

        environ = os.environ.get("MLFLOW_TRACKING_URI")
        explicit = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
        mlflow.set_tracking_uri(self.tracking_uri)
        return (None if explicit == environ else explicit, environ)


def _restore_fluent_api(saved):
    import mlflow

    mlflow.set_tracking_uri(saved[0])
    if saved[1] is not None:
        os.environ["MLFLOW_TRACKING_URI"] = saved[1]
