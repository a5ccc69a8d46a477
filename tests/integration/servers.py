"""Real servers on loopback for the integration tests: PostgreSQL, `mlflow server`, `kcv ui`.

Each server is a context manager that starts the real program, waits until it answers, and on
exit stops it and everything it spawned (each server runs in its own process group), so no
postgres or mlflow process outlives a test.
"""

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import types
import urllib.error
import urllib.request

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(condition: bool, why: str):
    """Skips locally, but FAILS under CI: CI installs every system package (.ci/run)."""
    if condition:
        return
    if in_ci():
        pytest.fail(f"{why} (CI=true: .ci/run installs it, so its absence is a failure)")
    pytest.skip(why)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def venv_script(name: str) -> str:
    """The console script `name` of the running interpreter's environment."""
    path = os.path.join(os.path.dirname(sys.executable), name)
    return path if os.path.exists(path) else (shutil.which(name) or name)


def postgres_bin_dir():
    """The folder with initdb/pg_ctl/createdb (Debian keeps them off PATH), or None."""
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return os.path.dirname(os.path.realpath(found))
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
        key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0,
    )
    return os.path.dirname(candidates[-1]) if candidates else None


def wait_for_http(url: str, timeout: float, process=None, log_path=None):
    """Polls `url` until it answers 200; fails with the server's log if it dies or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{_tail(log_path)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s:\n{_tail(log_path)}")


def _tail(path, n=4000):
    if not path or not os.path.exists(path):
        return ""
    with open(path, errors="replace") as f:
        return f.read()[-n:]


def stop_process_group(process, timeout=15.0):
    """SIGTERM the process group, SIGKILL what is left; returns once every member is gone."""
    if process is None:
        return
    pgid = process.pid  # start_new_session=True makes the child its group leader
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass
    deadline = time.monotonic() + timeout
    while group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)


def process_alive(pid) -> bool:
    """True while `pid` runs; a zombie (exited, not yet reaped by its parent) counts as gone.

    pg_ctl daemonizes the postmaster, so its parent is PID 1, which in some sandboxes never
    reaps orphans: /proc/<pid> then lingers as a zombie after a clean shutdown.
    """
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def group_alive(pgid) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie leader still "exists" for killpg; only count live members.
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(stat) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def children(pid):
    """Pids of the live direct children of `pid`."""
    found = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(stat) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(stat.split("/")[2]))
    return found


@contextlib.contextmanager
def spawn(cmd, log_path, env=None, cwd=None):
    """Starts `cmd` in its own process group with output to `log_path`; stops the group on exit."""
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True
        )
    try:
        yield process
    finally:
        stop_process_group(process)


@contextlib.contextmanager
def postgres_server(database="kcv"):
    """A throwaway PostgreSQL cluster on 127.0.0.1:<free port>; yields `.uri` and `.pid`.

    initdb refuses to run as root, so as root the cluster belongs to the `postgres` system user
    (created by Debian's postgresql package) and the commands run through `runuser`.
    """
    bin_dir = postgres_bin_dir()
    require(bin_dir is not None, "PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    as_root = os.geteuid() == 0
    if as_root:
        require(shutil.which("runuser") is not None, "runuser is needed to run postgres as root")
        try:
            import pwd

            pg_user = pwd.getpwnam("postgres")
        except KeyError:
            pg_user = None
        require(pg_user is not None, "running as root needs the `postgres` system user")

    def run(*args):
        cmd = [os.path.join(bin_dir, args[0]), *args[1:]]
        if as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)

    # Not pytest's tmp_path: its parent is mode 0700 for root and the postgres user can't enter.
    root = tempfile.mkdtemp(prefix="kcv-pg-")
    data = os.path.join(root, "data")
    log = os.path.join(root, "postgres.log")
    if as_root:
        os.chown(root, pg_user.pw_uid, pg_user.pw_gid)
    port = free_port()
    started = False
    try:
        run("initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        # Sockets go into the data folder (the default /var/run/postgresql may not exist).
        options = f"-p {port} -h 127.0.0.1 -k {data} -c fsync=off"
        run("pg_ctl", "-D", data, "-o", options, "-l", log, "-w", "-t", "60", "start")
        started = True
        run("createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", database)
        with open(os.path.join(data, "postmaster.pid")) as f:
            pid = int(f.readline())
        yield types.SimpleNamespace(uri=f"postgresql://postgres@127.0.0.1:{port}/{database}", pid=pid)
    except subprocess.CalledProcessError as e:
        raise RuntimeError(
            f"{e.cmd} failed: {e.stderr.decode(errors='replace')}\n{_tail(log)}"
        ) from e
    finally:
        if started:
            with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
                run("pg_ctl", "-D", data, "-m", "fast", "-w", "-t", "60", "stop")
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def mlflow_server(backend_store_uri, artifacts_destination, log_path, timeout=90.0):
    """`mlflow server` on 127.0.0.1:<free port> (one worker); yields (url, process)."""
    port = free_port()
    cmd = [
        venv_script("mlflow"), "server",
        "--backend-store-uri", backend_store_uri,
        "--artifacts-destination", str(artifacts_destination),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]
    url = f"http://127.0.0.1:{port}"
    # No GenAI job runner: seven idle worker processes the tests never use.
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with spawn(cmd, log_path, env=env) as process:
        wait_for_http(f"{url}/health", timeout, process, log_path)
        yield url, process
