"""Segmenters export with their metadata, optionally with the argmax inside, and
`kcv segment` runs the export through the folder pipeline."""

import json

import keras
import numpy as np
import pytest
from click.testing import CliRunner

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="segmenter graphs are traced with tf.function (kerascv_suite.export.graph)")

NAMES = ["background", "circle", "square", "triangle"]


@pytest.fixture(scope="module")
def segmenter(tmp_path_factory):
    """unet_shapes (a segmenter recipe, 64 x 64, 4 classes) with class names, exported
    with the argmax inside to TFLite."""
    from kerascv_suite.export import export_models
    from kerascv_suite.models import build, with_metadata

    keras.utils.set_random_seed(5)
    model = with_metadata(build("unet_shapes"), class_names=NAMES)
    folder = tmp_path_factory.mktemp("unet")
    paths = export_models(model, {"tflite": folder / "unet.tflite"}, argmax=True)
    return model, paths


def test_argmax_export_gives_the_keras_class_map(segmenter):
    import cv2
    from skimage import data

    from kerascv_suite.export import ExportedModel, exported_metadata

    model, paths = segmenter
    images = np.stack([cv2.resize(getattr(data, n)()[..., :3], (64, 64))
                       for n in ("astronaut", "coffee")]).astype("float32")
    expected = np.argmax(model.predict(images, verbose=0), axis=-1)
    masks = ExportedModel(paths["tflite"])(images)["masks"]
    assert masks.shape == (2, 64, 64)
    # Near-ties may flip a pixel between float32 runtimes; none here in practice.
    assert np.mean(masks != expected) <= 1e-3
    metadata = exported_metadata(paths["tflite"])
    assert metadata["class_names"] == NAMES and metadata["task"] == "segmentation"
    assert metadata["export"]["kind"] == "segmenter" and metadata["input_shape"] == [64, 64, 3]


def test_segment_runs_the_export_with_its_class_names(segmenter, tmp_path):
    from kerascv_suite.apps.cli import main
    from kerascv_suite.data import make_shapes, write_image

    _, paths = segmenter
    root = tmp_path / "images"
    for i, sample in enumerate(make_shapes(2, (64, 64), seed=2)):
        write_image(root / f"s{i}.png", sample["image"])
    (root / "broken.png").write_bytes(b"not an image")
    result = CliRunner().invoke(main, ["segment", str(root), "--model", str(paths["tflite"]),
                                       "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "2 written" in result.output and "1 skipped" in result.output
    fractions = json.loads((tmp_path / "out" / "fractions.json").read_text())
    assert len(fractions) == 2
    for record in fractions.values():
        assert set(record["fractions"]) == set(NAMES)
        assert sum(record["fractions"].values()) == pytest.approx(1.0)


def test_tflite_names_the_op_it_cannot_express(tmp_path):
    from kerascv_suite.export import export_model
    from kerascv_suite.models import build

    # SegNet's max-pooling indices need tf.BitwiseAnd, outside TFLite's builtin ops.
    with pytest.raises(ValueError, match="tf.BitwiseAnd.*saved_model or onnx"):
        # At the registry's test sizes with two blocks: the same layers, a smaller graph.
        model = build("segnet", input_shape=(32, 32, 3), num_classes=3, width=0.0625,
                      blocks=2)
        export_model(model, tmp_path / "s.tflite", "tflite", argmax=True)
