"""`kcv weights list|download|convert` and the pretrained column of `kcv models`."""

import json
import os

import numpy as np
from click.testing import CliRunner

from kerascv_suite import models, weights
from kerascv_suite.apps.models_cmd import models_command
from kerascv_suite.apps.weights_cmd import weights_group
from tests.weights.helpers import random_entry


def invoke(command, *args):
    result = CliRunner().invoke(command, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_list_shows_every_entry_with_its_published_metric(tmp_path, monkeypatch):
    monkeypatch.setenv(weights.CACHE_ENV, str(tmp_path))
    monkeypatch.delenv(weights.CATALOG_ENV, raising=False)
    table = invoke(weights_group, "list")
    shipped = weights.list_entries()
    assert len(shipped) == 25  # catalog.yaml 24 classifiers + catalog_detection.yaml 1
    for entry in shipped:
        assert entry.name in table
    # torchvision 0.28 ResNet18_Weights.IMAGENET1K_V1: acc@1 69.758, acc@5 89.078, 44.661 MB.
    line = next(row for row in table.splitlines() if row.startswith("resnet18.tv_in1k*"))
    assert "44.661 MB" in line and "top-1 69.758 / top-5 89.078" in line and " no " in line
    rows = json.loads(invoke(weights_group, "list", "resnet1*", "--format", "json"))
    assert {r["name"] for r in rows} == {"resnet18.tv_in1k", "resnet101.keras_in1k",
                                         "resnet101_v1_5.tv_in1k", "resnet152.keras_in1k",
                                         "resnet152_v1_5.tv_in1k"}
    # A detector's published metric is its COCO box AP.
    line = next(r for r in table.splitlines() if r.startswith("ssd300_coco.tv_coco*"))
    assert "box AP 25.1 (COCO val2017)" in line
    # A file placed in the cache by hand shows as cached.
    (tmp_path / "resnet18-f37072fd.pth").write_bytes(b"")
    rows = json.loads(invoke(weights_group, "list", "resnet18", "--format", "json"))
    assert rows[0]["cached"] is True


def test_download_then_convert_a_checkpoint_offline(catalog, served, tmp_path):
    _, folder, state = served
    catalog(random_entry(folder))
    output = invoke(weights_group, "download", "squeezenet1_1.random")
    entry = weights.get_entry("squeezenet1_1.random")
    # keras.utils.get_file prints "Downloading data from URL" and a progress bar first.
    assert "Downloading data from http://127.0.0.1:" in output
    assert output.splitlines()[-1] == f"squeezenet1_1.random: {weights.converted_path(entry)}"

    out = tmp_path / "converted.weights.h5"
    invoke(weights_group, "convert", str(weights.cached_path(entry)), "--model",
           "squeezenet1_1", "--out", str(out))
    model = models.build("squeezenet1_1", preprocessing="torch")
    model.load_weights(out)
    kernel = state["classifier.1.weight"].numpy().transpose(2, 3, 1, 0)
    np.testing.assert_array_equal(model.get_layer("conv10").get_weights()[0], kernel)
    assert os.path.getsize(out) > 4_000_000

    bad = CliRunner().invoke(weights_group, ["convert", str(weights.cached_path(entry)),
                                             "--model", "lenet5", "--out", str(out)])
    assert bad.exit_code != 0 and "No torchvision layout is known for model 'lenet5'" in str(
        bad.exception)


def test_models_shows_which_models_have_pretrained_weights(monkeypatch):
    monkeypatch.delenv(weights.CATALOG_ENV, raising=False)
    rows = {r["name"]: r for r in json.loads(invoke(models_command, "squeezenet*", "--format",
                                                    "json"))}
    assert rows["squeezenet1_1"]["pretrained"] == "squeezenet1_1.tv_in1k"
    table = invoke(models_command, "vgg1*")
    assert "vgg16.keras_in1k" in table and "vgg11.tv_in1k" in table
    assert next(r for r in table.splitlines() if r.startswith("vgg16_c ")).split()[3] == "-"
