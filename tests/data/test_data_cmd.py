import pytest
from click.testing import CliRunner

from kerascv_suite.apps.data_cmd import COMMANDS, data_group


@pytest.fixture
def runner():
    return CliRunner()


def invoke(runner, *args):
    return runner.invoke(data_group, [str(a) for a in args], catch_exceptions=False)


def test_commands_exported():
    assert COMMANDS == (data_group,)


@pytest.mark.parametrize("fmt", ["voc", "coco", "yolo", "masks", "folders"])
def test_make_shapes_then_check(runner, tmp_path, fmt):
    out = tmp_path / fmt
    result = invoke(runner, "make", "shapes", out, "--format", fmt, "--num-images", 5,
                    "--image-size", 32, "--num-classes", 2, "--seed", 3)
    assert result.exit_code == 0, result.output
    assert "train: " in result.output and "val: " in result.output
    result = invoke(runner, "check", out, "--format", fmt, "--strict")
    assert result.exit_code == 0, result.output
    assert "nothing skipped" in result.output
    assert "circle" in result.output and "triangle" not in result.output


def test_convert_and_check_reports_skips(runner, tmp_path):
    src, dst = tmp_path / "voc", tmp_path / "coco"
    invoke(runner, "make", "shapes", src, "--format", "voc", "--num-images", 5,
           "--image-size", 32)
    result = invoke(runner, "convert", src, dst, "--from", "voc", "--to", "coco")
    assert result.exit_code == 0, result.output
    assert "train: read 5, wrote 5" in result.output
    next((dst / "train").iterdir()).write_bytes(b"")  # break one image
    result = runner.invoke(data_group, ["check", str(dst), "--format", "coco", "--strict"])
    assert result.exit_code == 1
    assert "bad image: empty file (0 bytes)" in result.output


def test_make_digits(runner, tmp_path):
    result = invoke(runner, "make", "digits", tmp_path)
    assert result.exit_code == 0, result.output
    assert "train: 1257 images" in result.output
    assert len(list((tmp_path / "test" / "7").iterdir())) > 20


def test_bad_input_names_the_value(runner, tmp_path):
    result = runner.invoke(data_group, ["make", "shapes", str(tmp_path), "--format", "tiff"])
    assert result.exit_code == 2 and "'tiff'" in result.output
    result = runner.invoke(data_group, ["check", str(tmp_path), "--format", "coco"])
    assert result.exit_code == 2 and "no splits found" in result.output
    bad = tmp_path / "annotations"
    bad.mkdir()
    (bad / "instances_train.json").write_text("{oops")
    result = runner.invoke(data_group, ["check", str(tmp_path), "--format", "coco"])
    assert result.exit_code == 2
    assert "instances_train.json" in result.output and "line 1, column 2" in result.output
