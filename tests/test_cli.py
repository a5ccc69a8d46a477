"""The `kcv` command line: lazy imports, listing, summaries and bad input."""

import json
import subprocess
import sys

import keras
import pytest
from click.testing import CliRunner

from kerascv_suite.apps.cli import main


def _run(*args):
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result


def test_help_does_not_import_tensorflow():
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from kerascv_suite.apps.cli import main\n"
        "for args in (['--help'], ['models', '--help'], ['summary', '--help']):\n"
        "    r = CliRunner().invoke(main, args)\n"
        "    assert r.exit_code == 0, r.output\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'jax', 'torch') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_models_lists_task_and_params():
    result = _run("models", "vgg*", "--format", "json")
    assert result.exit_code == 0
    rows = {r["name"]: r for r in json.loads(result.output)}
    # keras.applications.VGG16 / VGG19 parameter counts (Keras counting).
    assert rows["vgg16"]["params"] == 138_357_544
    assert rows["vgg19"]["params"] == 143_667_240
    assert rows["vgg16"]["task"] == "classification"
    table = _run("models").output
    assert "resnet50" in table and "25,636,712" in table


def test_summary_of_a_saved_three_conv_stack(tmp_path):
    inputs = keras.Input((16, 16, 3))
    x = inputs
    for i in range(3):
        x = keras.layers.Conv2D(4, 3, padding="same", name=f"c{i}")(x)
    path = tmp_path / "stack.keras"
    keras.Model(inputs, x).save(path)
    result = _run("summary", str(path), "--format", "json")
    assert result.exit_code == 0, result.output
    layers = {r["name"]: r for r in json.loads(result.output)["layers"]}
    # Three stacked 3x3 stride-1 convolutions see 7x7; two see 5x5 (VGG paper, sec. 2.3).
    assert layers["c1"]["receptive_field"] == [5, 5]
    assert layers["c2"]["receptive_field"] == [7, 7]


def test_summary_googlenet_reproduces_inception_costs():
    result = _run("summary", "googlenet", "--format", "json")
    assert result.exit_code == 0, result.output
    layers = {r["name"]: r for r in json.loads(result.output)["layers"]}
    # Szegedy et al. 2015: the 3a 5x5 branch with a 16-filter 1x1 bottleneck on 28x28x192
    # costs 28*28*192*16 + 28*28*5*5*16*32 = 12,443,648 multiplications.
    assert layers["inception_3a_5x5_reduce"]["output_shape"] == [28, 28, 16]
    assert layers["inception_3a_5x5_reduce"]["macs"] + layers["inception_3a_5x5"]["macs"] == 12_443_648
    table = _run("summary", "googlenet").output
    assert "Total MACs" in table and "inception_3a_5x5" in table


def test_summary_with_input_shape_override():
    result = _run("summary", "lenet5", "--input-shape", "32,32,1", "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["input_shape"] == [32, 32, 1]


@pytest.mark.parametrize(
    "args, message",
    [
        (["summary", "resnet5"], "Did you mean"),
        (["summary", "missing.keras"], "missing.keras"),
        (["summary", "lenet5", "--input-shape", "a,b"], "a,b"),
        (["summary", "lenet5", "--input-shape", "0,32,1"], "0,32,1"),
        (["models", "nothing*"], "nothing*"),
    ],
)
def test_bad_input_names_the_value(args, message):
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert message in result.output
