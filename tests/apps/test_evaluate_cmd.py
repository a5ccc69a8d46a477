"""`kcv evaluate`: metrics of a briefly trained LeNet-5 on digits, 10-crop TTA, ensembles."""

import json

import keras
import numpy as np
import pytest
from click.testing import CliRunner
from sklearn import metrics as skm

from kerascv_suite.apps.cli import main
from kerascv_suite.data.builtin.digits import load_digits
from kerascv_suite.models import build
from kerascv_suite.models.classification.inference import (ensemble_members,
                                                           predict_dataset, ten_crop)
from kerascv_suite.pipelines.evaluate_classifier import EvaluateConfig, run


def _digits(split):
    ds = load_digits(split)
    return np.stack([s["image"] for s in ds]), np.array([s["label"] for s in ds])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Two LeNet-5s trained for a few steps on digits, saved as .keras files."""
    images, labels = _digits("train")
    paths = []
    for seed in (0, 1):
        keras.utils.set_random_seed(seed)
        model = build("lenet5")
        model.compile("adam", "sparse_categorical_crossentropy")
        model.fit(images[:640], labels[:640], batch_size=64, epochs=1, verbose=0)
        path = tmp_path_factory.mktemp("models") / f"lenet5_{seed}.keras"
        model.save(path)
        paths.append(str(path))
    return paths


def _invoke(*args):
    result = CliRunner().invoke(main, ["evaluate", *args])
    return result


def test_json_report_matches_direct_prediction_and_sklearn(trained, tmp_path):
    out = tmp_path / "eval"
    result = _invoke("--model", trained[0], "--format", "json", "--out", str(out))
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)

    images, labels = _digits("test")
    probabilities = keras.saving.load_model(trained[0]).predict(images, verbose=0)
    predictions = probabilities.argmax(axis=1)
    assert report["num_samples"] == 270  # the digits test split (data/builtin/digits.py)
    assert report["accuracy"] == pytest.approx(skm.accuracy_score(labels, predictions))
    # A few steps of training already beat chance (0.1) by far.
    assert report["accuracy"] > 0.3
    assert report["top5_accuracy"] == pytest.approx(
        skm.top_k_accuracy_score(labels, probabilities, k=5, labels=range(10)))
    _, recall, f1, support = skm.precision_recall_fscore_support(
        labels, predictions, labels=range(10), zero_division=0)
    np.testing.assert_allclose([c["recall"] for c in report["per_class"]], recall)
    np.testing.assert_allclose([c["f1"] for c in report["per_class"]], f1)
    assert [c["support"] for c in report["per_class"]] == support.tolist()
    assert report["confusion_matrix"] == skm.confusion_matrix(labels, predictions).tolist()
    # The PNG is a real image; report.json holds the same report.
    assert (out / "confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "report.json").read_text())["accuracy"] == report["accuracy"]


def test_table_output_names_every_class(trained):
    result = _invoke("--model", trained[0])
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.stdout and "top-5" in result.stdout
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines[4:14]] == [str(d) for d in range(10)]


def test_ten_crop_views_are_corners_centre_and_mirrors():
    image = np.arange(5 * 6).reshape(5, 6, 1)
    crops = ten_crop(image, (3, 4))
    assert crops.shape == (10, 3, 4, 1)
    np.testing.assert_array_equal(crops[0], image[:3, :4])  # top-left
    np.testing.assert_array_equal(crops[1], image[:3, 2:])  # top-right
    np.testing.assert_array_equal(crops[2], image[2:, :4])  # bottom-left
    np.testing.assert_array_equal(crops[3], image[2:, 2:])  # bottom-right
    np.testing.assert_array_equal(crops[4], image[1:4, 1:5])  # centre
    np.testing.assert_array_equal(crops[5:], crops[:5, :, ::-1])  # mirrors
    with pytest.raises(ValueError, match="smaller"):
        ten_crop(image, (6, 6))


def test_ten_crop_tta_averages_the_ten_softmax_outputs(trained):
    import cv2

    result = run(EvaluateConfig(models=[trained[0]], tta="10crop"))
    images, labels = _digits("test")
    model = keras.saving.load_model(trained[0])
    # AlexNet resizes to 256/224 of the crop: 32 * 256 / 224 = 36.57 -> 37.
    big = np.stack([cv2.resize(i, (37, 37), interpolation=cv2.INTER_LINEAR)[..., None]
                    for i in images])
    views = np.concatenate([ten_crop(i, (32, 32)) for i in big])
    expected = model.predict(views, verbose=0).reshape(len(images), 10, 10).mean(axis=1)
    assert result.report.accuracy == pytest.approx(
        np.mean(expected.argmax(axis=1) == labels))
    np.testing.assert_array_equal(
        result.report.confusion, skm.confusion_matrix(labels, expected.argmax(axis=1)))


def test_ensemble_averages_the_members_softmax(trained, tmp_path):
    result = _invoke("--model", trained[0], "--model", trained[1], "--format", "json")
    assert result.exit_code == 0, result.output
    images, labels = _digits("test")
    mean = np.mean([keras.saving.load_model(p).predict(images, verbose=0) for p in trained],
                   axis=0)
    report = json.loads(result.stdout)
    assert report["models"] == trained
    assert report["accuracy"] == pytest.approx(np.mean(mean.argmax(axis=1) == labels))

    # The one-model ensemble (kerascv_suite's `ensemble`) and the per-member mean agree.
    models = [keras.saving.load_model(p) for p in trained]
    members, mode = ensemble_members(models, None, (32, 32))
    assert mode == "model" and len(members) == 1
    dataset = load_digits("test")
    combined, _ = predict_dataset(members, dataset, 64, None)
    separate, _ = predict_dataset(ensemble_members(models[:1], None, (32, 32))[0]
                                  + ensemble_members(models[1:], None, (32, 32))[0],
                                  dataset, 64, None)
    np.testing.assert_allclose(combined, separate, atol=1e-6)


def test_rgb_models_take_grayscale_digits(tmp_path):
    keras.utils.set_random_seed(0)
    model = build("lenet5", input_shape=(32, 32, 3))
    path = tmp_path / "rgb.keras"
    model.save(path)
    result = run(EvaluateConfig(models=[str(path)], split="val"))
    assert int(result.report.support.sum()) == 270  # the digits val split


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "missing.keras"], "missing.keras"),
        (["--model", "lenet5", "--data", "no/such/folder"], "no/such/folder"),
        (["--model", "lenet5", "--split", "nope"], "nope"),
        (["--model", "lenet5", "--tta", "5crop"], "5crop"),
    ],
)
def test_bad_input_names_the_value(args, message):
    result = _invoke(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_class_count_mismatch_is_a_usage_error(tmp_path):
    path = tmp_path / "five.keras"
    build("lenet5", num_classes=5).save(path)
    result = _invoke("--model", str(path))
    assert result.exit_code == 2
    assert "predict [5] classes" in result.output and "10" in result.output
