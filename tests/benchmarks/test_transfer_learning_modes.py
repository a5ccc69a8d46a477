"""benchmarks/transfer_learning.py compares like with like: its three target runs resolve
to the same config (recipe lenet5_digits_transfer, chosen by the target folder's name) but
for how the model starts."""

import importlib.util
import sys
from pathlib import Path

from kerascv_suite.tasks import load_config

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "transfer_learning.py"


def load_benchmark():
    spec = importlib.util.spec_from_file_location("transfer_learning", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def options(arguments) -> dict:
    """`--weights W --freeze F --head-epochs N` as config overrides."""
    names = {"--weights": "weights", "--freeze": "freeze", "--head-epochs": "head_epochs"}
    pairs = dict(zip(arguments[::2], arguments[1::2]))
    assert set(pairs) <= set(names), arguments
    return {names[k]: (int(v) if k == "--head-epochs" else v) for k, v in pairs.items()}


def test_the_three_runs_differ_only_in_how_the_model_starts(tmp_path):
    benchmark = load_benchmark()
    data = str(tmp_path / benchmark.TARGET_FOLDER)
    configs = {mode: load_config(None, model="lenet5", data=data, seed=1, epochs=60,
                                 **options(benchmark.mode_arguments(mode, 60)))
               for mode in benchmark.MODES}
    assert {m: c.phase1_epochs for m, c in configs.items()} == {"a": 60, "b": 30, "c": 0}
    assert configs["a"].weights == configs["b"].weights == "models:/digits_0_5@champion"
    assert configs["c"].weights is None
    started = {"weights", "freeze", "head_epochs"}
    shared = [{k: v for k, v in c.to_dict().items() if k not in started}
              for c in configs.values()]
    assert shared[0] == shared[1] == shared[2]
    assert shared[0]["recipe"] == "lenet5_digits_transfer" and shared[0]["augment"]
