"""benchmarks/gpu_feed.py keeps running: its `--smoke` run on the CPU, and its report.

The smoke run (one backend, one model, tiny sizes) checks the printed structure, never the
speed: the three rates and the ratio are present and positive, and the worst ratio is the
last line. The GPU figures come from benchmarks/gpu_feed_device.sh on a GPU machine.
"""

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_feed.py"
RATIO = re.compile(r"^ratio \(b\)/\(a\) (\S+) (\S+): ([0-9.]+)$")
WORST = re.compile(r"^worst ratio \(b\)/\(a\): ([0-9.]+) \((\S+), (\S+)\)$")


def load_benchmark():
    spec = importlib.util.spec_from_file_location("gpu_feed", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def result(case, backend, a, b, c):
    return {"case": case, "model": case, "backend": backend, "batch_size": 8, "size": 64,
            "a": a, "b": b, "c": c, "workers": 2, "device": "cpu: test",
            "mixed_precision": "float32"}


def test_report_lists_every_ratio_and_ends_with_the_worst(capsys):
    gpu_feed = load_benchmark()
    args = gpu_feed.parse_args(["--smoke"])
    results = [result("resnet50", "tensorflow", 100.0, 90.0, 95.0),
               result("resnet50", "jax", 100.0, 50.0, 70.0),
               result("ssd300", "torch", 40.0, 38.0, 40.0)]
    gpu_feed.report(results, {}, args)
    lines = capsys.readouterr().out.strip().splitlines()
    ratios = [RATIO.match(line).groups() for line in lines if RATIO.match(line)]
    assert ratios == [("ssd300", "torch", "0.950"), ("resnet50", "tensorflow", "0.900"),
                      ("resnet50", "jax", "0.500")]
    assert WORST.match(lines[-1]).groups() == ("0.500", "resnet50", "jax")


def test_report_names_a_failed_backend(capsys):
    gpu_feed = load_benchmark()
    gpu_feed.report([], {"torch": "exit code 1"}, gpu_feed.parse_args(["--smoke"]))
    out = capsys.readouterr().out
    assert "torch: FAILED (exit code 1)" in out
    assert out.strip().splitlines()[-1] == "worst ratio (b)/(a): none measured"


@pytest.mark.slow
def test_smoke_run_on_tensorflow_prints_rates_and_the_worst_ratio_last():
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("KERAS_BACKEND", None)
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", "--backends", "tensorflow", "--models",
         "ssd300", "--workers", "1", "--warmup", "1", "--steps", "2"],
        capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith("uptime: ") and lines[1].startswith("cores: ")
    row = next(line for line in lines if line.startswith("ssd300 "))
    a, b, c = (float(v) for v in row.split()[5:8])
    assert min(a, b, c) > 0
    ratio = next(RATIO.match(line) for line in lines if RATIO.match(line))
    assert ratio.groups()[:2] == ("ssd300", "tensorflow")
    assert float(ratio.group(3)) == pytest.approx(b / a, rel=0.02)  # the table rounds the rates
    worst = WORST.match(lines[-1])
    assert worst is not None, lines[-1]
    assert worst.groups() == (ratio.group(3), "ssd300", "tensorflow")
