"""`kcv ui`: the MLflow UI on the store the training runs log to."""

import contextlib
import os
import signal
import socket
import subprocess
import sys

import click

REMOTE_SCHEMES = ("http://", "https://", "databricks")


def resolve_store(tracking_uri=None):
    """The tracking store `kcv train` logs to: `tracking_uri`, else MLflow's own resolution
    (MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in the working directory)."""
    if tracking_uri:
        return tracking_uri
    import mlflow

    return mlflow.get_tracking_uri()


def server_command(store, host, port, workers):
    """The `mlflow server` command line that serves `store` (runs, metrics, registry, UI)."""
    return [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", store,
        "--host", host,
        "--port", str(port),
        "--workers", str(workers),
    ]


def _check_port_free(host, port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError as e:
            raise click.BadParameter(
                f"cannot listen on {host}:{port} ({e.strerror}); pick another --port. "
                f"Received: --port {port}",
                param_hint="--port",
            ) from e


@click.command("ui")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option(
    "--port", type=click.IntRange(1, 65535), default=5000, show_default=True, help="Port."
)
@click.option(
    "--tracking-uri",
    default=None,
    help="Store to show (default: MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here).",
)
@click.option(
    "--workers", type=click.IntRange(min=1), default=1, show_default=True,
    help="Server worker processes.",
)
def ui_command(host, port, tracking_uri, workers):
    """Start the MLflow UI on the training runs' store; Ctrl-C stops it."""
    store = resolve_store(tracking_uri)
    if store.startswith(REMOTE_SCHEMES):
        raise click.UsageError(
            f"The tracking store is already a server; open {store} in a browser instead. "
            f"Received: tracking URI {store!r}"
        )
    _check_port_free(host, port)
    click.echo(f"MLflow UI for {store} at http://{host}:{port} (Ctrl-C stops it)")
    env = dict(os.environ)
    # MLflow's GenAI job runner starts seven extra worker processes that training runs never
    # use; on a small machine they compete with training for the CPU.
    env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    # Its own process group, so stopping `kcv ui` stops the server's uvicorn workers too.
    process = subprocess.Popen(
        server_command(store, host, port, workers), env=env, start_new_session=True
    )

    def _stop(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        returncode = process.wait()
    except KeyboardInterrupt:
        returncode = 0
    finally:
        signal.signal(signal.SIGTERM, previous)
        _stop_group(process)
    if returncode:
        raise click.ClickException(f"mlflow server exited with status {returncode}")


def _stop_group(process, timeout=10):
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass
    # Workers may outlive the supervisor by a moment; SIGKILL whatever is left of the group.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=timeout)


COMMANDS = (ui_command,)
