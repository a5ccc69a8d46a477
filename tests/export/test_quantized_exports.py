"""`--quantize float16|int8` TFLite exports: same float contract, int8 layers inside,
the quantization in the metadata, calibration images from the recipe's set or a folder.

Their accuracy change is measured (AP50) by benchmarks/export_inference.py, not here.
"""

import keras
import numpy as np
import pytest
from click.testing import CliRunner

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="TFLite files are converted on the tensorflow backend (kerascv_suite.export)")


def int8_tensors(path):
    from kerascv_suite.export.runtimes import tflite_interpreter

    return sum(d["dtype"] == np.int8 for d in tflite_interpreter(path).get_tensor_details())


@pytest.fixture(scope="module")
def yolo(tmp_path_factory):
    """yolo_v1_tiny at 64 px (decode + NMS in the graph) as an int8 TFLite file."""
    from kerascv_suite.export import export_models
    from kerascv_suite.models import build

    keras.utils.set_random_seed(3)
    model = build("yolo_v1_tiny", input_shape=(64, 64, 3))
    last = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)][-1]
    last.bias.assign(keras.ops.convert_to_numpy(last.bias) + 0.5)  # boxes that score
    folder = tmp_path_factory.mktemp("yolo")
    settings = {"score_threshold": 0.02, "max_detections": 20}
    path = export_models(model, {"tflite": folder / "int8.tflite"}, quantize="int8",
                         calibration_images=8, **settings)["tflite"]
    return model, settings, path


def test_int8_detector_keeps_the_float_contract(yolo):
    from kerascv_suite.export import ExportedDetector, exported_metadata, random_inputs
    from kerascv_suite.models import describe
    from kerascv_suite.models.detection.inference import Detector

    model, settings, path = yolo
    images, _ = random_inputs((64, 64, 3), 2, seed=4)
    reference = Detector(model, **settings).predict(images)
    exported = ExportedDetector(path)
    out = exported.predict(images)
    assert {k: (v.shape, v.dtype) for k, v in out.items()} == \
        {k: (v.shape, v.dtype) for k, v in reference.items()}
    assert int8_tensors(path) > 0
    # Scores stay float32: not on int8's 1/256 grid.
    scores = out["scores"][out["scores"] > 0]
    assert len(scores) and np.mean(np.abs(scores * 256 - np.round(scores * 256)) > 1e-3) > 0.5
    info = exported_metadata(path)["export"]
    assert info["quantization"] == "int8"
    assert info["calibration"] == "shapes (train split, the built-in detection set)"
    assert exported.class_names == describe(model)["class_names"]


@pytest.mark.parametrize("quantize", ["float16", "int8"])
def test_quantized_classifier_stays_close_to_keras(tmp_path, quantize):
    from kerascv_suite.export import export_model, exported_metadata, load_exported
    from kerascv_suite.export.calibration import calibration_images
    from kerascv_suite.models import build

    keras.utils.set_random_seed(1)
    model = build("lenet5_digits")
    path = export_model(model, tmp_path / "lenet.tflite", "tflite", quantize=quantize,
                        calibration_images=16)
    images, _ = calibration_images(model, (32, 32, 1), "digits", count=8)
    expected = model.predict(images, verbose=0)
    got = np.stack([load_exported(path)(image[None])[0] for image in images])
    assert np.max(np.abs(got - expected)) < (1e-2 if quantize == "float16" else 0.1)
    metadata = exported_metadata(path)["export"]
    assert metadata["quantization"] == quantize
    if quantize == "int8":
        assert int8_tensors(path) > 0
        assert metadata["calibration"] == \
            "digits (train split, the set recipe lenet5_digits trained on)"


def test_calibration_reads_a_folder_and_skips_broken_files(tmp_path):
    from kerascv_suite.data import make_shapes, write_image
    from kerascv_suite.export.calibration import calibration_images
    from kerascv_suite.models import build

    for i, sample in enumerate(make_shapes(3, (40, 48), seed=2)):
        write_image(tmp_path / "sub" / f"s{i}.png", sample["image"])
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    images, source = calibration_images(build("lenet5"), (32, 32, 1), tmp_path, count=10)
    assert images.shape == (3, 32, 32, 1) and images.dtype == np.float32
    assert 0 <= images.min() and images.max() <= 255 and source.startswith("3 images of")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="No images to calibrate on"):
        calibration_images(build("lenet5"), (32, 32, 1), tmp_path / "empty", 4)


def test_quantize_needs_tflite(tmp_path):
    from kerascv_suite.apps.cli import main

    result = CliRunner().invoke(main, ["export", "--model", "lenet5", "--format", "onnx",
                                       "--quantize", "int8", "--out", str(tmp_path / "l.onnx")])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.strip()]
    assert errors == ["Error: --quantize int8 applies to TFLite exports only; export with "
                      "--format tflite, or drop --quantize for onnx. Received: --format "
                      "onnx"]
    assert not (tmp_path / "l.onnx").exists()
