"""`kcv ui`: which store it serves and how it refuses bad input (the browser test is in
tests/integration/test_ui_browser.py)."""

import socket

from click.testing import CliRunner

from kerascv_suite.apps.cli import main
from kerascv_suite.apps.ui_cmd import resolve_store, server_command


def test_default_store_is_the_training_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    # MLflow's own default, which `kcv train` uses too: sqlite mlflow.db in the working dir.
    assert resolve_store() == f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////data/runs.db")
    assert resolve_store() == "sqlite:////data/runs.db"
    assert resolve_store("postgresql://u@h/db") == "postgresql://u@h/db"


def test_server_command_serves_that_store():
    cmd = server_command("sqlite:////x/mlflow.db", "127.0.0.1", 5123, 1)
    assert cmd[1:4] == ["-m", "mlflow", "server"]
    assert cmd[cmd.index("--backend-store-uri") + 1] == "sqlite:////x/mlflow.db"
    assert cmd[cmd.index("--port") + 1] == "5123"
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1"


def test_a_remote_tracking_server_is_not_served_again(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    result = CliRunner().invoke(main, ["ui"])
    assert result.exit_code == 2
    assert "http://127.0.0.1:5999" in result.output


def test_a_busy_port_is_named(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        result = CliRunner().invoke(main, ["ui", "--port", str(port)])
    assert result.exit_code == 2
    assert f"--port {port}" in result.output
    assert not (tmp_path / "mlflow.db").exists()


def test_port_range_is_checked():
    result = CliRunner().invoke(main, ["ui", "--port", "70000"])
    assert result.exit_code == 2 and "70000" in result.output
