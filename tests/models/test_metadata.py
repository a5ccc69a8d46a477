"""Model metadata: what `describe` reads survives `.keras`, MLflow and inference models."""

import keras
import numpy as np
import pytest

from kerascv_suite import models
from kerascv_suite.models import MetadataModel, describe, with_metadata
from kerascv_suite.models.detection import make_inference_model
from kerascv_suite.models.detection.inference import (Detector, DetectorInferenceModel,
                                                      inference_model)

NAMES = ["circle", "square", "triangle"]
# One model per kind of class that stores metadata: functional classifier / segmenter /
# single-shot detector (MetadataModel) and a subclassed two-stage detector.
CASES = {
    "lenet5": ("classification", (32, 32, 1), "unit", None),
    "unet": ("segmentation", (32, 32, 3), "unit", None),
    "ssd300_tiny": ("detection", (260, 260, 3), "caffe", "ssd"),
    "faster_rcnn_small": ("detection", (64, 64, 3), "caffe", "faster_rcnn"),
}


def _build(name, **overrides):
    spec = models.get_spec(name)
    return models.build(name, **{**spec.test_overrides, **overrides})


def _round_trip(model, tmp_path):
    path = tmp_path / "model.keras"
    model.save(path)
    return keras.saving.load_model(path)  # safe mode


@pytest.mark.backend
@pytest.mark.parametrize("name", list(CASES))
def test_describe_round_trips_through_a_keras_file(name, tmp_path):
    task, shape, preprocessing, family = CASES[name]
    spec = models.get_spec(name)
    num_classes = 10 if name == "lenet5" else 3
    model = _build(name, num_classes=num_classes)
    info = describe(model)
    assert info["task"] == task and info["name"] == name
    assert info["input_shape"] == shape
    assert info["preprocessing"] == preprocessing
    assert info["class_names"] is None
    # Builder arguments: the variant's defaults merged with the overrides, JSON-native.
    expected_args = {**spec.defaults, **spec.test_overrides, "num_classes": num_classes}
    assert info["builder_args"] == {k: list(v) if isinstance(v, tuple) else v
                                    for k, v in expected_args.items()}
    if family is None:
        assert info["decoder"] is None
    else:
        assert info["decoder"]["family"] == family
        assert info["decoder"]["box_format"] == "xyxy"
        assert info["decoder"]["num_classes"] == 3
    names = NAMES if num_classes == 3 else [str(i) for i in range(10)]
    named = with_metadata(model, class_names=names)
    assert describe(named) == {**info, "class_names": names}
    restored = _round_trip(named, tmp_path)
    assert type(restored) is type(named)
    assert describe(restored) == describe(named)
    assert restored.count_params() == model.count_params()
    # The builder arguments rebuild the architecture.
    rebuilt = models.build(info["name"], **info["builder_args"])
    assert rebuilt.count_params() == model.count_params()


@pytest.mark.backend
def test_with_metadata_wraps_a_functional_model_over_the_same_layers(tmp_path):
    base = models.get_spec("lenet5").builder(num_classes=4)  # the bare builder: no metadata
    assert not isinstance(base, MetadataModel)
    named = with_metadata(base, task="classification", class_names=list("abcd"))
    assert isinstance(named, MetadataModel) and named is not base
    assert named.name == base.name
    assert [layer.name for layer in named.layers] == [layer.name for layer in base.layers]
    assert all(a is b for a, b in zip(named.layers, base.layers))  # shared, not copied
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 1)).astype("float32")
    np.testing.assert_allclose(named.predict(x, verbose=0), base.predict(x, verbose=0))
    # A MetadataModel is updated in place; fields merge.
    again = with_metadata(named, class_names=list("wxyz"), builder_args={"num_classes": 4})
    assert again is named
    assert describe(named)["class_names"] == list("wxyz")
    assert describe(named)["task"] == "classification"
    restored = _round_trip(named, tmp_path)
    np.testing.assert_allclose(restored.predict(x, verbose=0), base.predict(x, verbose=0),
                               atol=1e-5)
    assert describe(restored)["builder_args"] == {"num_classes": 4}


def test_a_rebuilt_graph_takes_the_metadata_over_with_with_metadata():
    # How our pipelines rebuild a model (a float32 output for mixed precision, a
    # training-free copy to log): `with_metadata(new, **describe(old))`.
    model = with_metadata(_build("lenet5"), class_names=[str(i) for i in range(10)])
    outputs = keras.layers.Activation("linear", dtype="float32", name="output_float32")(
        model.outputs[0])
    plain = keras.Model(model.inputs, outputs, name=model.name)
    assert describe(plain)["class_names"] is None  # Keras alone drops it
    rebuilt = with_metadata(plain, **describe(model))
    assert describe(rebuilt) == describe(model)


def test_describe_reads_what_it_can_of_a_model_without_metadata():
    inputs = keras.Input((24, None, 3))
    plain = keras.Model(inputs, keras.layers.Conv2D(2, 3)(inputs))
    assert describe(plain) == {"task": None, "class_names": None, "name": None,
                               "builder_args": {}, "input_shape": (24, None, 3),
                               "preprocessing": None, "decoder": None}

    class Subclassed(keras.Model):
        def call(self, x):
            return x

    assert describe(Subclassed())["input_shape"] is None
    assert describe(Subclassed())["task"] is None


def test_with_metadata_rejects_bad_fields():
    model = _build("lenet5")
    with pytest.raises(ValueError, match="Unknown metadata fields"):
        with_metadata(model, classes=["a"])
    with pytest.raises(ValueError, match="task must be one of"):
        with_metadata(model, task="ocr")
    with pytest.raises(ValueError, match="list of strings"):
        with_metadata(model, class_names="cat,dog")
    with pytest.raises(ValueError, match="xyxy"):
        with_metadata(model, decoder={"box_format": "xywh"})

    class Subclassed(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(TypeError, match="Subclassed"):
        with_metadata(Subclassed(), task="classification")


def test_two_stage_thresholds_are_not_metadata_to_overwrite():
    model = _build("faster_rcnn_small")
    with pytest.raises(ValueError, match="arguments of the inference call"):
        with_metadata(model, decoder={"score_threshold": 0.9})
    assert model.score_threshold == pytest.approx(0.05)
    # Class names are free to set on the detector itself.
    assert with_metadata(model, class_names=NAMES) is model
    assert describe(model)["class_names"] == NAMES


@pytest.mark.backend
def test_inference_model_carries_decoder_settings(tmp_path):
    model = with_metadata(_build("yolo_v1"), class_names=NAMES)
    before = describe(model)
    assert before["decoder"]["score_threshold"] == pytest.approx(0.2)  # darknet's default
    detector = make_inference_model(model, score_threshold=0.3, max_detections=7)
    assert describe(model) == before  # the training model is unchanged
    info = describe(detector)
    assert info["class_names"] == NAMES and info["name"] == "yolo_v1"
    assert info["decoder"] == {**before["decoder"], "score_threshold": 0.3,
                               "max_detections": 7}
    decoder_layer = detector.get_layer("detections")
    assert decoder_layer.score_threshold == pytest.approx(0.3)
    assert decoder_layer.max_detections == 7
    restored = _round_trip(detector, tmp_path)
    assert describe(restored) == info
    x = np.random.default_rng(0).uniform(0, 255, (1, 64, 64, 3)).astype("float32")
    assert restored.predict(x, verbose=0)["boxes"].shape == (1, 7, 4)


def test_inference_model_of_a_saved_detector_takes_new_thresholds(tmp_path):
    detector = make_inference_model(with_metadata(_build("ssd300_tiny"), class_names=NAMES))
    assert describe(detector)["decoder"]["max_detections"] == 200  # the paper's
    restored = _round_trip(detector, tmp_path)
    assert inference_model(restored) is restored
    rebuilt = inference_model(restored, max_detections=5, score_threshold=0.5)
    assert describe(restored)["decoder"]["max_detections"] == 200
    info = describe(rebuilt)
    assert info["decoder"]["max_detections"] == 5
    assert info["decoder"]["score_threshold"] == 0.5
    assert info["class_names"] == NAMES
    assert rebuilt.get_layer("detections").max_detections == 5


@pytest.mark.backend
def test_detector_thresholds_leave_the_two_stage_model_unchanged(tmp_path):
    model = with_metadata(_build("faster_rcnn_small"), class_names=NAMES)
    config, info = model.get_config(), describe(model)
    detector = Detector(model, score_threshold=0.0, iou_threshold=0.6, max_detections=3)
    assert model.get_config() == config and describe(model) == info
    assert (model.score_threshold, model.nms_threshold, model.max_detections) == (
        pytest.approx(0.05), pytest.approx(0.5), 10)
    assert isinstance(detector.model, DetectorInferenceModel)
    assert detector.decoder == {**info["decoder"], "score_threshold": 0.0,
                                "iou_threshold": 0.6, "max_detections": 3}
    x = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    out = detector.predict(x)
    assert out["boxes"].shape == (2, 3, 4)
    assert np.all(out["num_detections"] == 3)  # a zero threshold fills every row
    assert Detector(model).model is model  # its own settings: the model itself
    # The inference model saves with its settings and the detector inside.
    restored = _round_trip(detector.model, tmp_path)
    assert describe(restored) == describe(detector.model)
    np.testing.assert_allclose(Detector(restored).predict(x)["scores"], out["scores"],
                               atol=1e-5)


@pytest.mark.backend
def test_metadata_survives_mlflow_keras_logging(tmp_path):
    import mlflow.keras as mlflow_keras
    model = with_metadata(_build("lenet5", num_classes=3), class_names=NAMES)
    # Explicit requirements: inferring them scans the environment (~40 s).
    mlflow_keras.save_model(model, str(tmp_path / "mlflow_model"), pip_requirements=["keras"])
    restored = mlflow_keras.load_model(str(tmp_path / "mlflow_model"))
    assert describe(restored) == describe(model)
