"""Digit subsets for transfer learning: `load_digits(split, classes, count)` and
`kcv data make digits --classes --train-count` (issue 13, part 6)."""

import numpy as np
import pytest
from click.testing import CliRunner

from kerascv_suite.apps.data_cmd import data_group
from kerascv_suite.data import load_digits
from kerascv_suite.data.builtin.digits import balanced_sample, parse_digit_classes
from kerascv_suite.tasks import load_config


def test_classes_keep_every_image_of_those_digits_renumbered():
    full = load_digits("val")
    kept = load_digits("val", classes="6-9")
    assert kept.class_names == ["6", "7", "8", "9"]
    # The same images as the full split's 6..9, labels renumbered 0..3 in digit order.
    expected = {s["path"]: s["label"] - 6 for s in full if s["label"] >= 6}
    assert {s["path"]: s["label"] for s in kept} == expected
    assert load_digits("val", classes=(9, 6, 7, 8)).class_names == kept.class_names


def test_count_is_balanced_nested_and_inside_the_split():
    train = load_digits("train", classes="6-9", count=40)
    counts = np.bincount([s["label"] for s in train], minlength=4)
    assert counts.tolist() == [10, 10, 10, 10]
    larger = {s["path"] for s in load_digits("train", classes="6-9", count=200)}
    assert {s["path"] for s in train} < larger
    others = {s["path"] for split in ("val", "test") for s in load_digits(split)}
    assert not larger & others
    assert [s["path"] for s in train] == [s["path"] for s in load_digits("train", "6-9", 40)]


def test_balanced_sample_takes_what_a_small_class_has():
    labels = np.array([0] * 8 + [1] * 2)
    kept = balanced_sample(np.arange(10), labels, 6)
    assert np.bincount(labels[kept]).tolist() == [4, 2]
    assert len(balanced_sample(np.arange(10), labels, 50)) == 10


@pytest.mark.parametrize("text, digits", [("0-4", (0, 1, 2, 3, 4)), ("9,6, 7", (6, 7, 9)),
                                          ("0-2,2-3,8", (0, 1, 2, 3, 8))])
def test_parse_digit_classes(text, digits):
    assert parse_digit_classes(text) == digits


@pytest.mark.parametrize("kwargs, message", [
    ({"classes": "4-2"}, "ranges low-high"), ({"classes": "a"}, "Received: classes='a'"),
    ({"classes": (3, 12)}, "0..9"), ({"classes": "6-9", "count": 3}, "count=3"),
])
def test_bad_subsets_say_what_was_received(kwargs, message):
    with pytest.raises(ValueError, match=message):
        load_digits("train", **kwargs)


def test_make_digits_subset_folder_picks_the_transfer_recipe(tmp_path):
    out = tmp_path / "digits_transfer"
    result = CliRunner().invoke(data_group, ["make", "digits", str(out), "--classes", "6-9",
                                             "--train-count", "8"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == f"train: 8 images -> {out}"
    assert sorted(p.name for p in (out / "train").iterdir()) == ["6", "7", "8", "9"]
    assert [len(list((out / "train" / d).iterdir())) for d in "6789"] == [2, 2, 2, 2]
    assert sum(1 for _ in (out / "test").rglob("*.png")) == 107
    # The folder's name selects recipes/lenet5_digits_transfer.yaml.
    config = load_config(None, model="lenet5", data=str(out))
    assert config.recipe == config.model_name == "lenet5_digits_transfer"
    result = CliRunner().invoke(data_group, ["make", "digits", str(tmp_path / "x"),
                                             "--classes", "0-4", "--train-count", "4"])
    assert result.exit_code == 2 and "Received: --train-count 4" in result.output
    assert not (tmp_path / "x").exists()
