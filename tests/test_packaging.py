"""The wheel installs apps/ and pipelines/ inside the library namespace, never top level."""

import pathlib
import subprocess
import sys
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_layout(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation",
         "-q", "-w", str(tmp_path)],
        check=True,
    )
    (wheel,) = tmp_path.glob("kerascv_suite-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top_level == {"kerascv_suite"}
    assert "kerascv_suite/apps/cli.py" in names
    assert "kerascv_suite/pipelines/__init__.py" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "kcv = kerascv_suite.apps.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
