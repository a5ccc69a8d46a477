"""Runs the test suite under every Keras backend and prints one combined closing line.

The whole suite runs under tensorflow; tests marked `backend` (layers and models) run again
under jax and torch. Tensorflow's run is split in three shards (the app/pipeline tests, the
integration tests of tests/integration, then the `backend` tests) so that the shards and the
other backends pack into `--jobs` parallel slots (default 2; much of a run is single-threaded
XLA compilation and Python, so two runs share 2 cores well): the two longest runs start
first, and each shorter one takes the slot that frees first. A run that fails, errors or
collects no test fails the matrix. Each run's output is printed whole when it ends, with its
30 slowest tests, and a closing table gives every run's wall time.

With KCV_MATRIX_REPORT_DIR set, each run's junit XML (every test's duration) and log are kept
in that directory (`<run>.xml`, `<run>.log`), for the next look at where CI time goes.

Usage:
    python tests/run_matrix.py [--backends tensorflow,jax,torch] [--jobs 2] [-- pytest args]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

BACKENDS = ("tensorflow", "jax", "torch")


def _counts(junit_path):
    if not os.path.exists(junit_path):
        return {"tests": 0, "failures": 0, "errors": 1, "skipped": 0}
    root = ET.parse(junit_path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root)
    keys = ("tests", "failures", "errors", "skipped")
    return {k: sum(int(s.get(k, 0)) for s in suites) for k in keys}


# (run label, backend, pytest marker expression), longest first. tests/conftest.py marks
# every test under tests/integration `integration`.
RUNS = (
    ("tensorflow:apps", "tensorflow", "not backend and not integration"),
    ("jax", "jax", "backend"),
    ("tensorflow:models", "tensorflow", "backend"),
    ("tensorflow:integration", "tensorflow", "integration and not backend"),
    ("torch", "torch", "backend"),
)
DURATIONS = 30


def _backend_env(backend, tmp):
    """Environment that makes a backend's test run cheaper without changing what it tests.

    Under jax most of a model test is XLA compiling the train and predict steps on the CPU.
    A compilation cache private to this matrix run lets the same program (the model restored
    from `.keras`, the predict after `fit`, the same model in another test) be compiled once,
    and XLA's CPU backend at optimization level 0 (no LLVM optimization passes: the same
    programs, compiled in half the time; the tests' tiny inputs run fast either way).
    """
    if backend != "jax":
        return {}
    flags = os.environ.get("XLA_FLAGS", "")
    return {
        "XLA_FLAGS": f"{flags} --xla_backend_optimization_level=0".strip(),
        "JAX_COMPILATION_CACHE_DIR": os.path.join(tmp, "jax-cache"),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
    }


def _command(markers, junit, pytest_args):
    return [sys.executable, "-m", "pytest", f"--junitxml={junit}", f"--durations={DURATIONS}",
            "-m", markers, *pytest_args]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--jobs", type=int, default=2, help="backend runs at the same time")
    parser.add_argument("pytest_args", nargs="*")
    args = parser.parse_args(argv)
    backends = {b for b in args.backends.split(",") if b}
    unknown = backends - set(BACKENDS)
    if unknown:
        parser.error(f"unknown backends {sorted(unknown)}; choose from {BACKENDS}")
    pending = [run for run in RUNS if run[1] in backends]
    totals = {"passed": 0, "failed": 0, "skipped": 0}
    failed_backends = []
    walls = {}
    with tempfile.TemporaryDirectory() as tmp:
        reports = os.environ.get("KCV_MATRIX_REPORT_DIR") or tmp
        os.makedirs(reports, exist_ok=True)
        running = {}
        while pending or running:
            while pending and len(running) < max(1, args.jobs):
                label, backend, markers = pending.pop(0)
                stem = label.replace(":", "-")
                junit = os.path.join(reports, f"{stem}.xml")
                log = open(os.path.join(reports, f"{stem}.log"), "w+")
                cmd = _command(markers, junit, args.pytest_args)
                print(f"=== start {label} KERAS_BACKEND={backend}: {' '.join(cmd[1:])}",
                      flush=True)
                env = {**os.environ, "KERAS_BACKEND": backend, **_backend_env(backend, tmp)}
                proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
                running[label] = (proc, log, junit, time.monotonic())
            time.sleep(1)
            for label, (proc, log, junit, start) in list(running.items()):
                rc = proc.poll()
                if rc is None:
                    continue
                del running[label]
                log.seek(0)
                walls[label] = time.monotonic() - start
                print(f"\n=== {label} (exit {rc}, {walls[label]:.0f} s)")
                print(log.read(), flush=True)
                log.close()
                c = _counts(junit)
                failed = c["failures"] + c["errors"]
                totals["passed"] += c["tests"] - failed - c["skipped"]
                totals["failed"] += failed
                totals["skipped"] += c["skipped"]
                # pytest exits 5 when it collected nothing: an empty run is a failure here.
                if rc != 0 or c["tests"] == 0:
                    failed_backends.append(f"{label} (exit {rc}, {c['tests']} tests)")
    print()
    for label, wall in walls.items():
        print(f"run {label}: {wall:.0f} s")
    for b in failed_backends:
        print(f"FAILED backend run: {b}")
    print(f"matrix: {totals['passed']} passed, {totals['failed']} failed, "
          f"{totals['skipped']} skipped")
    return 1 if failed_backends or totals["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
