"""Trains each recipe (or a named subset) and prints its metric beside the recipe's target.

Every recipe in kerascv_suite/recipes/ declares `target: {metric, value}` (the issue's
quality target, or a floor below the measured value where the issue sets none). This trains
the recipe exactly as `kcv train --model <its model>` does, in a scratch folder with its own
MLflow store, and prints one row per recipe: metric, value reached, target, pass/fail, wall
time and the machine load (`os.getloadavg`) before and after. Not run in CI: the recipes take
minutes to half an hour each on the 2-core CPU.

    python benchmarks/recipes.py                       # every recipe
    python benchmarks/recipes.py lenet5_digits unet_shapes --epochs 3   # a subset, shorter
"""

import argparse
import os
import sys
import tempfile
import time

import yaml


def main(argv=None):
    from kerascv_suite.tasks import get_task, list_recipes, load_config
    from kerascv_suite.tasks.config import recipe_path
    from kerascv_suite.training.runner import run

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipes", nargs="*", help="recipe names [all]")
    parser.add_argument("--epochs", type=int, default=None,
                        help="override the recipes' epochs (a quick check; targets assume the "
                             "recipe's own)")
    args = parser.parse_args(argv)
    names = args.recipes or list_recipes()
    rows = []
    for name in names:
        recipe = yaml.safe_load(recipe_path(name).read_text(encoding="utf-8"))
        data = recipe.get("data")
        if data not in (None, "digits", "shapes") and not os.path.isdir(data):
            # e.g. lenet5_digits_transfer: its folder and source model come from
            # benchmarks/transfer_learning.py, which runs the whole comparison.
            print(f"{name:<20} skipped: its data {data!r} is not built in (see the recipe's "
                  f"header for the script that makes it)", flush=True)
            continue
        target = recipe.get("target") or {}
        folder = tempfile.mkdtemp(prefix=f"kcv-recipe-{name}-")
        config = load_config(None, model=recipe["model"], recipe=name, epochs=args.epochs,
                             run_dir=os.path.join(folder, "run"),
                             tracking_uri=f"sqlite:///{folder}/mlflow.db")
        load_before, start = os.getloadavg()[0], time.monotonic()
        result = run(get_task(config.task), config, log=lambda *_: None)
        seconds, load_after = time.monotonic() - start, os.getloadavg()[0]
        value = result.test_metrics.get(target.get("metric"), float("nan"))
        ok = value >= target.get("value", float("inf"))
        rows.append((name, target.get("metric"), value, target.get("value"), ok, seconds,
                     load_before, load_after))
        print(f"{name:<20} {target.get('metric')}: {value:.4f} (target {target.get('value')}) "
              f"{'PASS' if ok else 'FAIL'}  {seconds:.0f} s, load {load_before:.1f} -> "
              f"{load_after:.1f}", flush=True)
    failed = [r[0] for r in rows if not r[4]]
    print(f"{len(rows) - len(failed)} passed, {len(failed)} failed"
          + (f": {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
