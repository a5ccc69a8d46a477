"""`kcv export`: every format is reloaded with its own runtime and compared with Keras."""

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from kerascv_suite.apps.cli import main
from kerascv_suite.export import (BACKEND_FORMATS, export_model, exported_metadata,
                                  load_exported, verify_export)
from kerascv_suite.models import build, describe, with_metadata

# Exports hold float32 graphs of the same ops; differences are rounding only.
ATOL = 1e-4
SUFFIX = {"saved_model": "", "onnx": ".onnx", "tflite": ".tflite"}
tensorflow_only = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="ONNX and TFLite exports are written on the tensorflow backend (see export.py)",
)


def _reload(path, export_format):
    """Reloads with each format's runtime directly (not through kerascv_suite.export)."""
    if export_format == "saved_model":
        layer = keras.layers.TFSMLayer(str(path), call_endpoint="serve")
        return lambda x: keras.ops.convert_to_numpy(layer(x))
    if export_format == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return lambda x: session.run(None, {name: x})[0]
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))

    def run(x):
        index = interpreter.get_input_details()[0]["index"]
        interpreter.resize_tensor_input(index, x.shape)
        interpreter.allocate_tensors()
        interpreter.set_tensor(index, x)
        interpreter.invoke()
        return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])

    return run


def _images(shape, n=3):
    return np.random.default_rng(1).uniform(0, 255, (n, *shape)).astype("float32")


def _saved_model(name, path):
    """A registry model saved as .keras; BN statistics set away from the identity."""
    model = build(name)
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            channels = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.normal(0, 0.5, channels).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, channels).astype("float32"))
    model.save(path)
    return model


@tensorflow_only
@pytest.mark.slow
@pytest.mark.parametrize("export_format", ["saved_model", "onnx", "tflite"])
@pytest.mark.parametrize("name", ["lenet5"])  # every other model: tests/export
def test_export_reloads_and_matches_keras(tmp_path, name, export_format):
    keras_file = tmp_path / f"{name}.keras"
    model = _saved_model(name, keras_file)
    out = tmp_path / f"{name}{SUFFIX[export_format]}"
    result = CliRunner().invoke(
        main, ["export", "--model", str(keras_file), "--format", export_format,
               "--out", str(out)],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "Verified: max |export - keras|" in result.output
    x = _images(tuple(model.inputs[0].shape[1:]))
    expected = model.predict(x, verbose=0)
    np.testing.assert_allclose(_reload(out, export_format)(x), expected, atol=ATOL)
    np.testing.assert_allclose(load_exported(out, export_format)(x), expected, atol=ATOL)


@tensorflow_only
def test_export_registry_name_with_overrides(tmp_path):
    out = tmp_path / "lenet5.onnx"
    result = CliRunner().invoke(
        main, ["export", "--model", "lenet5", "--num-classes", "4", "--format", "onnx",
               "--out", str(out)],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert _reload(out, "onnx")(_images((32, 32, 1))).shape == (3, 4)


@tensorflow_only
def test_export_refuses_to_overwrite_and_bad_model(tmp_path):
    out = tmp_path / "m.onnx"
    out.write_text("keep me")
    result = CliRunner().invoke(
        main, ["export", "--model", "lenet5", "--format", "onnx", "--out", str(out)])
    assert result.exit_code == 2 and "--overwrite" in result.output
    assert out.read_text() == "keep me"
    result = CliRunner().invoke(
        main, ["export", "--model", "lenet6", "--format", "onnx", "--out", str(out)])
    assert result.exit_code == 2 and "lenet6" in result.output
    result = CliRunner().invoke(
        main, ["export", "--model", "lenet5", "--format", "pickle", "--out", str(out)])
    assert result.exit_code == 2 and "pickle" in result.output


@tensorflow_only
def test_verify_export_catches_a_wrong_export(tmp_path):
    model = build("lenet5")
    other = build("lenet5")  # different random weights
    path = export_model(other, tmp_path / "other.onnx", "onnx")
    assert not verify_export(model, path, "onnx").ok(ATOL)
    assert verify_export(other, path, "onnx").ok(ATOL)


def test_unknown_format_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="format='pickle'"):
        export_model(build("lenet5"), tmp_path / "x", "pickle")


@pytest.mark.backend
def test_saved_model_on_every_backend_or_a_clear_error(tmp_path, backend):
    model = build("lenet5")
    if "saved_model" not in BACKEND_FORMATS[backend]:
        with pytest.raises(ValueError, match="KERAS_BACKEND=tensorflow"):
            export_model(model, tmp_path / "sm", "saved_model")
        return
    path = export_model(model, tmp_path / "sm", "saved_model")
    assert verify_export(model, path, "saved_model").ok(ATOL)


@tensorflow_only
@pytest.mark.parametrize("export_format", ["onnx", "saved_model"])
def test_export_carries_the_model_metadata(tmp_path, export_format):
    keras_file = tmp_path / "lenet5.keras"
    model = with_metadata(build("lenet5", num_classes=3), class_names=["a", "b", "c"])
    model.save(keras_file)
    out = tmp_path / f"lenet5{SUFFIX[export_format]}"
    result = CliRunner().invoke(
        main, ["export", "--model", str(keras_file), "--format", export_format,
               "--out", str(out), "--no-verify"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    metadata = exported_metadata(out, export_format)
    assert metadata["class_names"] == ["a", "b", "c"]
    assert metadata["task"] == "classification" and metadata["name"] == "lenet5"
    assert metadata["input_shape"] == [32, 32, 1] and metadata["preprocessing"] == "unit"
    assert metadata["builder_args"] == describe(model)["builder_args"]
    if export_format == "onnx":
        import onnx

        props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
        assert props["class_names"] == '["a", "b", "c"]'
    # The export still runs as before.
    np.testing.assert_allclose(load_exported(out, export_format)(_images((32, 32, 1))),
                               model.predict(_images((32, 32, 1)), verbose=0), atol=ATOL)


@tensorflow_only
def test_rcnn_family_checkpoint_gives_clear_errors_not_tracebacks(tmp_path):
    # The case: `kcv export --model best.keras --format onnx` on a Faster R-CNN was
    # "AttributeError: 'FasterRCNN' object has no attribute 'inputs'".
    keras_file = tmp_path / "faster.keras"
    build("faster_rcnn_small").save(keras_file)
    for extra, expected in ((["--format", "saved_model", "--raw"], "without --raw"),):
        result = CliRunner().invoke(main, ["export", "--model", str(keras_file), *extra,
                                           "--out", str(tmp_path / "x")])
        assert result.exit_code == 2, result.output + repr(result.exception)
        assert expected in result.output


@tensorflow_only
def test_detector_checkpoint_exports_as_a_verified_detector(tmp_path):
    """A YOLO v1 recipe's .keras checkpoint (training form: raw head) exports as a detector
    with decode + NMS inside; --verify compares its detections with the Keras inference
    path."""
    keras_file = tmp_path / "yolo.keras"
    model = build("yolo_v1_shapes")  # the recipe's model: conv head, 112 x 112
    last = [layer for layer in model.layers
            if isinstance(layer, (keras.layers.Dense, keras.layers.Conv2D))][-1]
    last.bias.assign(keras.ops.convert_to_numpy(last.bias) + 0.5)  # boxes that score
    model.save(keras_file)
    out = tmp_path / "yolo.tflite"
    result = CliRunner().invoke(
        main, ["export", "--model", str(keras_file), "--format", "tflite", "--out", str(out),
               "--score-threshold", "0.05", "--max-detections", "20"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "Verified:" in result.output
    metadata = exported_metadata(out, "tflite")
    assert metadata["export"]["kind"] == "detector" and metadata["task"] == "detection"
    assert metadata["export"]["decoder"]["max_detections"] == 20
    out = load_exported(out, "tflite")(_images((112, 112, 3), n=2))
    assert out["boxes"].shape == (2, 20, 4) and out["num_detections"].shape == (2,)
