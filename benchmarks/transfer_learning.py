"""Transfer learning on this CPU: a head on frozen features vs fine-tuning vs from scratch.

The comparison of issue 13 (part 6), run end to end through the commands a user types, in a
scratch folder with its own MLflow store:

1. `kcv data make digits SRC --classes 0-5` (the source task: 757 training images of the
   digits 0-5) and `kcv data make digits digits_transfer --classes 6-9 --train-count 40`
   (the target task: 10 training images per digit 6-9; val and test keep all 107 each);
2. `kcv train --model lenet5 --data SRC --recipe lenet5_digits --register digits_0_5
   --alias champion` (the source model, registered in MLflow);
3. for each seed, three target runs of the recipe `lenet5_digits_transfer` (chosen by the
   target folder's name; same data, epochs, augmentation, optimizer and seed), differing
   only in how the model starts:
   (a) `--weights models:/digits_0_5@champion --freeze backbone --head-epochs EPOCHS`:
       the transferred layers stay frozen, only the new 4-class output layer trains;
   (b) `--weights models:/digits_0_5@champion --freeze backbone`: the two-phase schedule
       (the new head for half the epochs, then every layer at lr x 0.1);
   (c) from scratch.

The test accuracy of each run (the runner's test evaluation of `best.keras`, read back from
MLflow) is printed per seed and as a mean, with the wall time of each command and the load
average (`os.getloadavg`) before and after. Not run in CI: 41 minutes on the 2-core CPU
shared with other jobs (load 12-23; 3 seeds, 10 `kcv train` runs), far less on a quiet one.

    python benchmarks/transfer_learning.py                 # 3 seeds, the recipe's epochs
    python benchmarks/transfer_learning.py --seeds 0 --epochs 5 --source-epochs 3  # quick
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SOURCE_NAME = "digits_0_5"
TARGET_FOLDER = "digits_transfer"  # its name selects recipes/lenet5_digits_transfer.yaml
MODES = {
    "a": "head only (--freeze backbone, all epochs)",
    "b": "fine-tune (two phases)",
    "c": "from scratch",
}


def kcv_executable() -> str:
    """The `kcv` console script of this Python environment."""
    beside = Path(sys.executable).with_name("kcv")
    found = str(beside) if beside.is_file() else shutil.which("kcv")
    if not found:
        raise SystemExit("No `kcv` command beside this Python or on PATH; install the project "
                         "(pip install -e .) in this environment.")
    return found


def kcv(args, log_path, tracking_uri) -> float:
    """Runs `kcv ARGS` with `MLFLOW_TRACKING_URI=tracking_uri` (output to `log_path`);
    returns its wall time. A failing command stops the benchmark with its last lines."""
    command = [kcv_executable(), *map(str, args)]
    print("$ kcv " + " ".join(map(str, args)), flush=True)
    # The store goes in the environment, not --tracking-uri: `--weights models:/...` is
    # resolved before the runner starts its MLflow run, against MLflow's process-wide URI.
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri}
    start = time.monotonic()
    with open(log_path, "w", encoding="utf-8") as log:
        code = subprocess.call(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    seconds = time.monotonic() - start
    if code != 0:
        tail = Path(log_path).read_text(encoding="utf-8").splitlines()[-15:]
        raise SystemExit(f"kcv exited with {code} ({log_path}):\n" + "\n".join(tail))
    return seconds


def mode_arguments(mode, epochs) -> list[str]:
    """The options that differ between the three target runs."""
    weights = ["--weights", f"models:/{SOURCE_NAME}@champion"]
    if mode == "a":
        return [*weights, "--freeze", "backbone", "--head-epochs", epochs]
    if mode == "b":
        return [*weights, "--freeze", "backbone"]
    return []


def test_accuracy(run_dir, tracking_uri) -> float:
    """The run's `test_accuracy` as MLflow recorded it (the runner's test evaluation)."""
    from mlflow.tracking import MlflowClient

    state = json.loads((Path(run_dir) / "checkpoints" / "state.json").read_text())
    run = MlflowClient(tracking_uri=tracking_uri).get_run(state["mlflow_run_id"])
    return float(run.data.metrics["test_accuracy"])


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="seeds of the target runs (the source trains once, seed 0)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs of every target run [the recipe's]")
    parser.add_argument("--source-epochs", type=int, default=20,
                        help="epochs of the source model (recipe lenet5_digits) [20]")
    parser.add_argument("--train-count", type=int, default=40,
                        help="training images of the target task, 10 per digit at 40 [40]")
    parser.add_argument("--folder", default=None,
                        help="work here and keep everything [a temporary folder, removed]")
    return parser.parse_args(argv)


def main(argv=None):
    import yaml

    from kerascv_suite.tasks.config import recipe_path

    args = parse_args(argv)
    recipe = yaml.safe_load(recipe_path("lenet5_digits_transfer").read_text(encoding="utf-8"))
    epochs = args.epochs or recipe["epochs"]
    folder = Path(args.folder or tempfile.mkdtemp(prefix="kcv-transfer-")).absolute()
    folder.mkdir(parents=True, exist_ok=True)
    tracking = f"sqlite:///{folder / 'mlflow.db'}"
    logs = folder / "logs"
    logs.mkdir(exist_ok=True)
    load_start = os.getloadavg()
    print(f"Folder {folder}; load average {load_start[0]:.1f} {load_start[1]:.1f} "
          f"{load_start[2]:.1f}; MLFLOW_TRACKING_URI={tracking}", flush=True)
    try:
        source, target = folder / "digits_0-5", folder / TARGET_FOLDER
        kcv(["data", "make", "digits", source, "--classes", "0-5"], logs / "make_source.log",
            tracking)
        kcv(["data", "make", "digits", target, "--classes", "6-9", "--train-count",
             args.train_count], logs / "make_target.log", tracking)
        seconds = kcv(["train", "--model", "lenet5", "--data", source, "--recipe",
                       "lenet5_digits", "--epochs", args.source_epochs, "--register",
                       SOURCE_NAME, "--alias", "champion", "--run-dir", folder / "source"],
                      logs / "source.log", tracking)
        source_accuracy = test_accuracy(folder / "source", tracking)
        print(f"source (digits 0-5): test_accuracy {source_accuracy:.4f}, {seconds:.0f} s",
              flush=True)
        results = {mode: [] for mode in MODES}
        for seed in args.seeds:
            for mode in MODES:
                run_dir = folder / f"{mode}_seed{seed}"
                before = os.getloadavg()[0]
                seconds = kcv(["train", "--model", "lenet5", "--data", target, "--epochs",
                               epochs, "--seed", seed, "--run-dir", run_dir,
                               *mode_arguments(mode, epochs)],
                              logs / f"{run_dir.name}.log", tracking)
                accuracy = test_accuracy(run_dir, tracking)
                results[mode].append(accuracy)
                print(f"  ({mode}) seed {seed}: test_accuracy {accuracy:.4f}  {seconds:.0f} s, "
                      f"load {before:.1f} -> {os.getloadavg()[0]:.1f}", flush=True)
        load_end = os.getloadavg()
        print(f"\nTarget: digits 6-9, {args.train_count} training images, {epochs} epochs, "
              f"seeds {' '.join(map(str, args.seeds))} (test: 107 images)")
        for mode, label in MODES.items():
            values = results[mode]
            print(f"({mode}) {label:<42} mean {sum(values) / len(values):.4f}  "
                  f"({' / '.join(f'{v:.4f}' for v in values)})")
        print(f"load average at start {load_start[0]:.1f} {load_start[1]:.1f} "
              f"{load_start[2]:.1f}, at end {load_end[0]:.1f} {load_end[1]:.1f} "
              f"{load_end[2]:.1f}")
    finally:
        if args.folder is None:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
