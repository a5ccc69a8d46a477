"""End to end: two `kcv train` runs, `kcv ui` on their store, the compare page in Chromium.

Needs Debian's chromium and chromium-driver (installed by .ci/run): skipped locally when
they are missing, a failure under CI. The screenshot is kept in pytest's tmp dir and copied
to test-artifacts/ at the repository root.
"""

import contextlib
import json
import os
import shutil
import signal
import time
from pathlib import Path

import pytest

from tests.integration.servers import (children, free_port, group_alive, require, spawn,
                                      venv_script, wait_for_http)

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
EXPERIMENT = "kcv-ui-e2e"
# The probe's flags for Chromium on this closed network (see .ci/run): no background
# connections, no first-run, no sandbox (CI runs as root).
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1400,2400",
)

# The texts of the leaf elements on the same line as, and right of, a row label: the
# compare page lays runs out as columns, so these are the row's values, left to right. The
# search widens from the label to its ancestors until `count` values are found, so text on
# the same line elsewhere (the assistant side panel) stays out. Nothing is scrolled: the
# metric names and values are two virtualized grids that MLflow keeps in step only when the
# values grid scrolls, so scrolling a name into view would misalign them.
ROW_JS = """
const [kind, label, count] = arguments;
let anchor = null;
if (kind === 'metric') {
  anchor = [...document.querySelectorAll('a[title="Plot chart"]')]
    .find(e => e.textContent.trim() === label);
} else {
  anchor = [...document.querySelectorAll('body *')]
    .find(e => e.children.length === 0 && e.textContent.trim() === label);
}
if (!anchor) return null;
const r = anchor.getBoundingClientRect();
const y = (r.top + r.bottom) / 2;
for (let scope = anchor.parentElement; scope; scope = scope.parentElement) {
  const cells = [];
  for (const e of scope.querySelectorAll('*')) {
    if (e.children.length) continue;
    const t = e.textContent.trim();
    const q = e.getBoundingClientRect();
    if (!t || q.width === 0 || q.left < r.right) continue;
    if (Math.abs((q.top + q.bottom) / 2 - y) < 8) cells.push([q.left, t]);
  }
  if (cells.length >= count) {
    cells.sort((a, b) => a[0] - b[0]);
    return cells.map(c => c[1]);
  }
}
return [];
"""


TOP_JS = """
const header = [...document.querySelectorAll('body *')]
  .find(e => e.children.length === 0 && e.textContent.trim() === arguments[0]);
if (header) header.scrollIntoView({block: 'start'});
"""


def _train(tmp_path, store, name, seed):
    # In this process (Keras is loaded here already; a `kcv` process would spend ~10 s on
    # imports): the same command line through the CLI's entry point.
    from click.testing import CliRunner

    from kerascv_suite.apps.cli import main

    args = ["train", "--model", "lenet5", "--epochs", "1", "--seed", str(seed),
            "--workers", "0", "--experiment", EXPERIMENT, "--tracking-uri", store,
            "--run-dir", str(tmp_path / "runs" / name)]
    with contextlib.chdir(tmp_path):  # MLflow's artifact root, ./mlruns, as for `kcv` there
        done = CliRunner().invoke(main, args)
    assert done.exit_code == 0, done.output[-3000:] + repr(done.exception)


def _browser(profile):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    # An explicit driver path: Selenium Manager would otherwise try to download one.
    return webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))


@pytest.mark.slow
def test_ui_shows_two_training_runs_side_by_side(tmp_path, mlflow_uri):
    require(shutil.which("chromium") is not None, "Debian's chromium is not installed")
    require(shutil.which("chromedriver") is not None, "Debian's chromium-driver is not installed")
    try:
        import selenium  # noqa: F401
    except ImportError:
        require(False, "selenium (the test extra) is not installed")
    from mlflow.tracking import MlflowClient
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    store = mlflow_uri
    _train(tmp_path, store, "first", seed=1)
    _train(tmp_path, store, "second", seed=2)
    client = MlflowClient(store)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time"])
    assert len(runs) == 2
    run_ids = [r.info.run_id for r in runs]
    common = set(runs[0].data.metrics) & set(runs[1].data.metrics)
    wanted = ("accuracy", "loss", "val_accuracy", "test_accuracy")
    checked = [m for m in wanted if m in common]
    assert len(checked) >= 2, sorted(common)

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    ui = [venv_script("kcv"), "ui", "--port", str(port), "--tracking-uri", store]
    with spawn(ui, tmp_path / "ui.log", env=env, cwd=tmp_path) as process:
        wait_for_http(f"{url}/health", 90, process, tmp_path / "ui.log")
        driver = _browser(tmp_path / "chromium-profile")
        try:
            page = (f"{url}/#/compare-runs?runs={json.dumps(run_ids)}"
                    f"&experiments={json.dumps([experiment.experiment_id])}")
            driver.get(page)
            # The UI is a React app: wait until the metric rows are rendered with both values.
            WebDriverWait(driver, 90).until(
                lambda d: len(d.execute_script(ROW_JS, "metric", checked[0], 2) or []) >= 2
            )
            shown_ids = driver.execute_script(ROW_JS, "label", "Run ID:", 2)
            assert shown_ids == run_ids, shown_ids
            names = [r.info.run_name for r in runs]
            assert driver.execute_script(ROW_JS, "label", "Run Name:", 2) == names
            for metric in checked:
                shown = driver.execute_script(ROW_JS, "metric", metric, 2)
                expected = [r.data.metrics[metric] for r in runs]
                # The UI rounds metrics to three decimals.
                assert [float(v) for v in shown] == pytest.approx(expected, abs=6e-4), metric
            # A tall window and the page scrolled back to its title: plots, run table,
            # parameters and metrics in one shot.
            driver.execute_script(TOP_JS, "Comparing 2 Runs from 1 Experiment")
            # Cosmetic only (the assertions are done): let the plot finish drawing.
            with contextlib.suppress(TimeoutException):
                WebDriverWait(driver, 20).until(
                    lambda d: d.find_elements(By.CSS_SELECTOR, ".parcoords-control-view"))
            screenshot = tmp_path / "mlflow_compare_runs.png"
            assert driver.save_screenshot(str(screenshot))
        except Exception:
            # Keep what the browser saw, for a failure in CI.
            ARTIFACTS.mkdir(exist_ok=True)
            driver.save_screenshot(str(ARTIFACTS / "mlflow_compare_runs_failed.png"))
            raise
        finally:
            driver.quit()
        # `kcv ui` runs the server in a process group of its own; SIGTERM to `kcv ui` alone
        # must stop that whole group (uvicorn workers included).
        server_groups = [os.getpgid(pid) for pid in children(process.pid)]
        assert server_groups, "kcv ui has no server child"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
        deadline = time.monotonic() + 30
        while any(map(group_alive, server_groups)) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not any(map(group_alive, server_groups)), "mlflow server outlived kcv ui"
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(screenshot, ARTIFACTS / screenshot.name)
    assert screenshot.stat().st_size > 10_000
