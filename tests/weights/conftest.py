"""Fixtures of the weights tests: torchvision, the reference implementation."""

import os
import runpy
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[3] / "shared"
LOADER = SHARED / "tools" / "torchvision_cpu" / "load.py"


@pytest.fixture(scope="session")
def torchvision():
    """torchvision 0.28 on the CPU torch (through the shared loader; see its README)."""
    if not LOADER.exists():
        if os.environ.get("CI"):
            pytest.fail(f"CI runs need {LOADER} beside the repository")
        pytest.skip(f"no {LOADER} (the torchvision reference loader)")
    try:
        return runpy.run_path(str(LOADER))["torchvision"]
    except ImportError as error:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"torchvision is not installed ({error}): "
                    "pip install torchvision==0.28.0 --no-deps")
