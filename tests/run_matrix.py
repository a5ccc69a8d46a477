"""Runs the test suite under every Keras backend and prints one combined closing line.

The whole suite runs under tensorflow; tests marked `backend` (layers and models) run again
under jax and torch. A backend run that fails, errors or collects no test fails the matrix.
Backend runs go side by side (`--jobs`, default 2): much of a run is single-threaded
(XLA compilation, Python), so two runs share 2 cores well. Each run's output is printed
whole when it ends.

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


def _command(backend, junit, pytest_args):
    cmd = [sys.executable, "-m", "pytest", f"--junitxml={junit}", "--durations=15", *pytest_args]
    if backend != "tensorflow":
        cmd += ["-m", "backend"]
    return cmd


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--jobs", type=int, default=2, help="backend runs at the same time")
    parser.add_argument("pytest_args", nargs="*")
    args = parser.parse_args(argv)
    pending = [b for b in args.backends.split(",") if b]
    totals = {"passed": 0, "failed": 0, "skipped": 0}
    failed_backends = []
    with tempfile.TemporaryDirectory() as tmp:
        running = {}
        while pending or running:
            while pending and len(running) < max(1, args.jobs):
                backend = pending.pop(0)
                junit = os.path.join(tmp, f"{backend}.xml")
                log = open(os.path.join(tmp, f"{backend}.log"), "w+")
                cmd = _command(backend, junit, args.pytest_args)
                print(f"=== start KERAS_BACKEND={backend}: {' '.join(cmd[1:])}", flush=True)
                env = {**os.environ, "KERAS_BACKEND": backend}
                proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
                running[backend] = (proc, log, junit, time.monotonic())
            time.sleep(1)
            for backend, (proc, log, junit, start) in list(running.items()):
                rc = proc.poll()
                if rc is None:
                    continue
                del running[backend]
                log.seek(0)
                print(f"\n=== KERAS_BACKEND={backend} (exit {rc}, {time.monotonic() - start:.0f} s)")
                print(log.read(), flush=True)
                log.close()
                c = _counts(junit)
                failed = c["failures"] + c["errors"]
                totals["passed"] += c["tests"] - failed - c["skipped"]
                totals["failed"] += failed
                totals["skipped"] += c["skipped"]
                # pytest exits 5 when it collected nothing: an empty run is a failure here.
                if rc != 0 or c["tests"] == 0:
                    failed_backends.append(f"{backend} (exit {rc}, {c['tests']} tests)")
    print()
    for b in failed_backends:
        print(f"FAILED backend run: {b}")
    print(f"matrix: {totals['passed']} passed, {totals['failed']} failed, "
          f"{totals['skipped']} skipped")
    return 1 if failed_backends or totals["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
