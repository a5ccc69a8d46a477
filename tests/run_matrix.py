"""Runs the test suite under every Keras backend and prints one combined closing line.

The whole suite runs under tensorflow; tests marked `backend` (layers and models) run again
under jax and torch. A backend run that fails, errors or collects no test fails the matrix.

Usage:
    python tests/run_matrix.py [--backends tensorflow,jax,torch] [-- extra pytest args]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

BACKENDS = ("tensorflow", "jax", "torch")


def _counts(junit_path):
    if not os.path.exists(junit_path):
        return {"tests": 0, "failures": 0, "errors": 1, "skipped": 0}
    root = ET.parse(junit_path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root)
    return {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("pytest_args", nargs="*")
    args = parser.parse_args(argv)
    backends = [b for b in args.backends.split(",") if b]
    totals = {"passed": 0, "failed": 0, "skipped": 0}
    failed_backends = []
    with tempfile.TemporaryDirectory() as tmp:
        for backend in backends:
            junit = os.path.join(tmp, f"{backend}.xml")
            cmd = [sys.executable, "-m", "pytest", f"--junitxml={junit}", *args.pytest_args]
            if backend != "tensorflow":
                cmd += ["-m", "backend"]
            print(f"\n=== KERAS_BACKEND={backend}: {' '.join(cmd[1:])}", flush=True)
            rc = subprocess.call(cmd, env={**os.environ, "KERAS_BACKEND": backend})
            c = _counts(junit)
            failed = c["failures"] + c["errors"]
            passed = c["tests"] - failed - c["skipped"]
            totals["passed"] += passed
            totals["failed"] += failed
            totals["skipped"] += c["skipped"]
            # pytest exits 5 when it collected nothing: an empty run is a failure here.
            if rc != 0 or c["tests"] == 0:
                failed_backends.append(f"{backend} (exit {rc}, {c['tests']} tests)")
    print()
    for b in failed_backends:
        print(f"FAILED backend run: {b}")
    print(f"matrix: {totals['passed']} passed, {totals['failed']} failed, {totals['skipped']} skipped")
    return 1 if failed_backends or totals["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
