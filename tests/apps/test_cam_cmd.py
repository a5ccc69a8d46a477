"""`kcv cam`: overlays land where a hand-built GAP model finds its evidence."""

import json

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from kerascv_suite.apps.cli import main
from kerascv_suite.data.image_io import decode_image, write_image


def _brightness_model(path):
    """A GAP classifier whose class-0 map is the image brightness, by construction.

    A 1x1 conv gives channel 0 = mean(RGB)/255 and channel 1 = 1 - mean(RGB)/255; the Dense
    classifier is the identity, so CAM_0 = brightness (Zhou et al. 2016, eq. 1).
    """
    inputs = keras.Input((16, 16, 3))
    conv = keras.layers.Conv2D(2, 1, activation="relu", name="features")
    x = conv(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    dense = keras.layers.Dense(2, activation="softmax", name="predictions")
    outputs = dense(x)
    model = keras.Model(inputs, outputs)
    third = np.full((1, 1, 3, 1), 1 / (3 * 255), "float32")
    conv.set_weights([np.concatenate([third, -third], -1), np.array([0.0, 1.0], "float32")])
    dense.set_weights([np.eye(2, dtype="float32"), np.zeros(2, "float32")])
    model.save(path)
    return path


def _square_image(path, size=(48, 64), corner=(6, 40)):
    image = np.full((*size, 3), 20, np.uint8)
    r, c = corner
    image[r:r + 12, c:c + 12] = 250
    write_image(path, image)
    return image


@pytest.fixture
def setup(tmp_path):
    model = _brightness_model(tmp_path / "gap.keras")
    images = tmp_path / "images"
    images.mkdir()
    _square_image(images / "a.png")
    _square_image(images / "b.png", corner=(30, 4))
    return model, images, tmp_path / "cams"


def test_overlays_are_red_on_the_square(setup):
    model, images, out = setup
    result = CliRunner().invoke(
        main, ["cam", "--model", str(model), str(images), "--out", str(out),
               "--class-index", "0", "--format", "json"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [r["class_index"] for r in rows] == [0, 0]
    # (square corner, a background point far from it) per image
    for row, ((r, c), (fr, fc)) in zip(rows, [((6, 40), (46, 2)), ((30, 4), (1, 62))]):
        overlay = decode_image(row["overlay"])
        assert overlay.shape == (48, 64, 3)  # the original image's size
        # JET: high evidence is red, none is blue (OpenCV colormap table).
        inside = overlay[r + 4:r + 8, c + 4:c + 8].reshape(-1, 3).mean(0)
        outside = overlay[fr, fc].astype(float)
        assert inside[0] > inside[2] + 50
        assert outside[2] > outside[0] + 50


def test_top_class_is_the_default_and_bad_images_are_skipped(setup):
    model, images, out = setup
    (images / "broken.jpg").write_text("not an image")
    result = CliRunner().invoke(
        main, ["cam", "--model", str(model), str(images / "a.png"), str(images / "broken.jpg"),
               "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    assert (out / "a_cam.png").exists()
    # The dark background dominates, so the top class of the square image is 1.
    assert "class 1" in result.output
    # The same summary and skipped.txt as kcv segment / kcv detect.
    assert "1 written, 1 skipped;" in result.output
    assert "skipped 1 unreadable: " in result.output and "broken.jpg (" in result.output
    lines = (out / "skipped.txt").read_text().splitlines()
    assert len(lines) == 1 and lines[0].startswith(str(images / "broken.jpg") + "\t")


def test_empty_folder_is_an_error(setup):
    model, images, out = setup
    empty = images.parent / "empty"
    empty.mkdir()
    result = CliRunner().invoke(main, ["cam", "--model", str(model), str(empty),
                                       "--out", str(out)])
    assert result.exit_code == 2 and "holds no image files" in result.output, result.output
    assert not out.exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "lenet5"], "no global-average-pooling head"),
        (["--class-index", "7"], "--class-index 7"),
    ],
)
def test_bad_input_names_the_value(setup, args, message):
    model, images, out = setup
    base = {"--model": str(model)}
    if args[0] == "--model":
        base = {}
    flat = [x for kv in base.items() for x in kv]
    result = CliRunner().invoke(main, ["cam", *flat, *args, str(images), "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert message in result.output
