"""A folder written by `kcv data make digits` trains lenet5 with the default augmentation.

No recipe applies to `--data <folder>`, so the RGB-minded classification preset (colour
jitter, fancy PCA) meets 1-channel PNGs: its colour ops are skipped and said once.
"""

import pytest
from click.testing import CliRunner

from kerascv_suite.apps.cli import main
from kerascv_suite.data.augment import GrayscaleColourWarning


@pytest.mark.slow
def test_digits_folder_trains_lenet5_one_epoch(tmp_path, monkeypatch, mlflow_uri):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    runner = CliRunner()
    made = runner.invoke(main, ["data", "make", "digits", "dg"])
    assert made.exit_code == 0, made.output
    with pytest.warns(GrayscaleColourWarning, match="fancy_pca=0.1 is skipped") as record:
        result = runner.invoke(main, ["train", "--model", "lenet5", "--data", "dg",
                                      "--epochs", "1", "--workers", "0", "--run-dir", "run"])
    assert result.exit_code == 0, result.output
    assert len([w for w in record if w.category is GrayscaleColourWarning]) == 1
    # The PNGs are read with lenet5's one channel, as the built-in digits are.
    assert "input 32x32x1" in result.output
    assert "test_accuracy" in result.output and (tmp_path / "run" / "config.yaml").is_file()
