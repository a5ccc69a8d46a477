"""`kcv train --model resnet18 --weights imagenet --freeze backbone` end to end (issue 13's
"Done when"): the shipped resnet18 entry is downloaded from the loopback server (see
conftest.py; a random checkpoint with its hash computed here), converted once, its backbone
copied into a model with a new 2-class head, frozen, and trained on a user's folder of real
photos."""

import cv2
import numpy as np
import yaml
from click.testing import CliRunner
from skimage import data as photos

from kerascv_suite.apps.cli import main
from tests.weights.helpers import serve_random_resnet18


def _photo_folder(root):
    """Two classes of scikit-image photos (RGB), a few crops each, as JPEG files."""
    for name, photo in (("cats", photos.chelsea()), ("cups", photos.coffee())):
        (root / name).mkdir(parents=True)
        for i in range(6):
            crop = photo[i * 10 : i * 10 + 200, i * 12 : i * 12 + 200]
            cv2.imwrite(str(root / name / f"{i}.jpg"), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))


def test_train_with_catalog_weights_and_a_frozen_backbone(catalog, served, torchvision,
                                                           tmp_path, monkeypatch, mlflow_uri):
    module, entry = serve_random_resnet18(torchvision, served[1], seed=7)
    catalog(entry)
    _photo_folder(tmp_path / "photos")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    run_dir = tmp_path / "run"
    result = CliRunner().invoke(main, [
        "train", "--model", "resnet18", "--data", str(tmp_path / "photos"),
        "--image-size", "64", "--epochs", "1", "--batch-size", "4", "--workers", "0",
        "--weights", "imagenet", "--freeze", "backbone", "--run-dir", str(run_dir)])
    assert result.exit_code == 0, result.output
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["weights"] == "imagenet" and config["freeze"] == "backbone"

    import keras

    model = keras.saving.load_model(run_dir / "checkpoints" / "best.keras")
    # The frozen backbone still holds the served checkpoint (OIHW -> HWIO); the head is new.
    served_kernel = module.state_dict()["conv1.weight"].numpy().transpose(2, 3, 1, 0)
    np.testing.assert_allclose(model.get_layer("conv1_conv").get_weights()[0], served_kernel,
                               rtol=1e-6, atol=1e-6)
    assert model.get_layer("predictions").get_weights()[0].shape == (512, 2)
