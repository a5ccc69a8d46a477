import keras
import numpy as np
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, jaccard_score

from kerascv_suite.metrics.segmentation import (
    ConfusionAccumulator,
    ConfusionReport,
    MeanIoUFromConfusion,
    scores_from_matrix,
    segmentation_confusion_matrix,
    segmentation_scores,
)


def _random_case(rng):
    k = int(rng.integers(2, 7))
    shape = (int(rng.integers(1, 4)), int(rng.integers(3, 12)), int(rng.integers(3, 12)))
    # Draw from a random subset of classes so some classes are absent from both maps.
    present = rng.choice(k, size=int(rng.integers(1, k + 1)), replace=False)
    labels = rng.choice(present, size=shape).astype(np.uint8)
    predictions = np.where(rng.random(shape) < 0.6, labels, rng.choice(present, size=shape))
    labels[rng.random(shape) < 0.15] = 255
    return k, labels, predictions.astype(np.int64)


def _sklearn_reference(labels, predictions, k):
    keep = labels.ravel() != 255
    y_true, y_pred = labels.ravel()[keep].astype(int), predictions.ravel()[keep]
    matrix = confusion_matrix(y_true, y_pred, labels=list(range(k)))
    seen = sorted(set(y_true) | set(y_pred))
    if not seen:
        return matrix, 0.0, 0.0
    # Jaccard index = IoU, over the classes present in the ground truth or predictions.
    ious = jaccard_score(y_true, y_pred, labels=seen, average=None)
    return matrix, float(np.mean(ious)), float(accuracy_score(y_true, y_pred))


CASES = [_random_case(np.random.default_rng(seed)) for seed in range(40)]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_numpy_matches_sklearn(case):
    k, labels, predictions = CASES[case]
    matrix, miou, accuracy = _sklearn_reference(labels, predictions, k)
    ours = segmentation_confusion_matrix(labels, predictions, k)
    np.testing.assert_array_equal(ours, matrix)
    scores = segmentation_scores(ours)
    assert scores.miou == pytest.approx(miou, abs=1e-12)
    assert scores.pixel_accuracy == pytest.approx(accuracy, abs=1e-12)


@pytest.mark.backend
def test_keras_metric_matches_sklearn_on_every_backend():
    # Every 5th case (8 shapes): each new shape costs eager jax a compilation of every op,
    # and the 40 cases are already checked against sklearn in numpy above.
    for k, labels, predictions in CASES[::5]:
        matrix, miou, accuracy = _sklearn_reference(labels, predictions, k)
        # Scores whose argmax is the prediction, as a softmax model would give.
        scores = np.eye(k, dtype="float32")[predictions] + 0.01
        metric = MeanIoUFromConfusion(k)
        metric.update_state(labels, scores)
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(metric.confusion), matrix)
        assert float(metric.result()) == pytest.approx(miou, abs=1e-6)
        pixel = MeanIoUFromConfusion(k, metric="pixel_accuracy")
        pixel.update_state(labels[..., None], predictions)  # (B,H,W,1) labels, class maps
        assert float(pixel.result()) == pytest.approx(accuracy, abs=1e-6)


@pytest.mark.backend
def test_batch_split_invariance_and_not_a_mean_of_batches():
    rng = np.random.default_rng(7)
    k = 4
    labels = rng.integers(0, k, size=(12, 6, 6)).astype(np.uint8)
    labels[:6, :, :3] = 0  # the two halves have different class statistics
    labels[rng.random(labels.shape) < 0.1] = 255
    predictions = np.where(rng.random(labels.shape) < 0.5, labels, rng.integers(0, k, labels.shape))
    predictions = np.where(labels == 255, 0, predictions)
    whole = MeanIoUFromConfusion(k)
    whole.update_state(labels, predictions)
    per_batch = []
    for splits in ([12], [6, 6], [1] * 12, [5, 3, 4]):
        metric, start = MeanIoUFromConfusion(k), 0
        accumulator = ConfusionAccumulator(k)
        for size in splits:
            metric.update_state(labels[start : start + size], predictions[start : start + size])
            accumulator.update(labels[start : start + size], predictions[start : start + size])
            if splits == [6, 6]:
                single = MeanIoUFromConfusion(k)
                single.update_state(labels[start : start + size], predictions[start : start + size])
                per_batch.append(float(single.result()))
            start += size
        assert float(metric.result()) == pytest.approx(float(whole.result()), abs=1e-6)
        assert accumulator.scores().miou == pytest.approx(float(whole.result()), abs=1e-6)
    assert abs(np.mean(per_batch) - float(whole.result())) > 1e-3


@pytest.mark.backend
def test_metric_inside_compiled_evaluate_covers_the_whole_split():
    k = 3
    rng = np.random.default_rng(0)
    images = rng.normal(size=(8, 4, 4, 2)).astype("float32")
    labels = rng.integers(0, k, size=(8, 4, 4)).astype("int32")
    labels[0, 0] = 255
    inputs = keras.Input((4, 4, 2))
    model = keras.Model(inputs, keras.layers.Conv2D(k, 1, activation="softmax")(inputs))
    model.compile(loss="sparse_categorical_crossentropy",
                  metrics=[MeanIoUFromConfusion(k), MeanIoUFromConfusion(k, metric="pixel_accuracy")])  # fmt: skip
    logs = model.evaluate(images, np.minimum(labels, k - 1), batch_size=3, verbose=0, return_dict=True)
    predictions = model.predict(images, verbose=0).argmax(-1)
    reference = segmentation_scores(segmentation_confusion_matrix(np.minimum(labels, k - 1), predictions, k))
    assert logs["miou"] == pytest.approx(reference.miou, abs=1e-5)
    assert logs["pixel_accuracy"] == pytest.approx(reference.pixel_accuracy, abs=1e-5)


@pytest.mark.backend
def test_unseen_classes_are_excluded_and_nan_safe():
    metric = MeanIoUFromConfusion(5)
    assert float(metric.result()) == 0.0  # nothing evaluated yet
    metric.update_state(np.array([[0, 0, 1, 255]]), np.array([[0, 1, 1, 3]]))
    # Class 0: TP 1, FN 1 -> 1/2; class 1: TP 1, FP 1 -> 1/2; classes 2-4 unseen (class 3
    # is predicted only on an ignored pixel). mIoU = 0.5.
    assert float(metric.result()) == pytest.approx(0.5)
    per_class = keras.ops.convert_to_numpy(metric.per_class_iou())
    np.testing.assert_allclose(per_class[:2], 0.5)
    assert np.isnan(per_class[2:]).all()
    metric.reset_state()
    assert float(metric.result()) == 0.0
    restored = MeanIoUFromConfusion.from_config(metric.get_config())
    assert (restored.num_classes, restored.ignore_index, restored.metric) == (5, 255, "miou")


def test_numpy_scores_report_and_errors():
    scores = ConfusionAccumulator(3).update(np.array([0, 1, 255]), np.array([0, 2, 2])).scores()
    # Class 0 IoU 1; class 1: FN 1 -> 0; class 2: FP 1 -> 0. mIoU = 1/3, accuracy 1/2.
    assert scores.miou == pytest.approx(1 / 3)
    assert scores.pixel_accuracy == 0.5
    assert scores.as_dict(["a", "b", "c"])["per_class_iou"] == {"a": 1.0, "b": 0.0, "c": 0.0}
    empty = segmentation_scores(np.zeros((2, 2), np.int64))
    assert empty.miou == 0.0 and empty.pixel_accuracy == 0.0
    assert empty.as_dict()["per_class_iou"] == {"0": None, "1": None}
    with pytest.raises(ValueError, match="0..2"):
        segmentation_confusion_matrix(np.array([3]), np.array([0]), 3)
    with pytest.raises(ValueError, match="same shape"):
        segmentation_confusion_matrix(np.zeros(2), np.zeros(3), 3)
    with pytest.raises(ValueError, match="metric"):
        MeanIoUFromConfusion(3, metric="dice")


# Rows ground truth, columns prediction. Class 0: TP 3, union 4 + 5 - 3 = 6 -> IoU 1/2;
# class 1: TP 4, union 6 + 5 - 4 = 7 -> 4/7; class 2 never seen -> NaN, left out of the
# mean. mIoU (1/2 + 4/7) / 2 = 15/28; pixel accuracy 7/10.
KNOWN_MATRIX = np.array([[3, 1, 0], [2, 4, 0], [0, 0, 0]])


def _pixels_of(matrix):
    """Label and prediction maps `(1, 1, pixels)` whose confusion matrix is `matrix`."""
    pairs = [(t, p) for t in range(len(matrix)) for p in range(len(matrix))
             for _ in range(matrix[t, p])]
    labels, predictions = np.array(pairs).T
    return labels.reshape(1, 1, -1), predictions.reshape(1, 1, -1)


@pytest.mark.backend
def test_scores_from_matrix_hand_computed_and_equal_to_numpy():
    miou, accuracy, per_class = (keras.ops.convert_to_numpy(x)
                                 for x in scores_from_matrix(KNOWN_MATRIX))
    assert float(miou) == pytest.approx(15 / 28, abs=1e-6)
    assert float(accuracy) == pytest.approx(0.7, abs=1e-6)
    np.testing.assert_allclose(per_class[:2], [0.5, 4 / 7], atol=1e-6)
    assert np.isnan(per_class[2])
    reference = segmentation_scores(KNOWN_MATRIX)
    assert float(miou) == pytest.approx(reference.miou, abs=1e-6)
    np.testing.assert_allclose(per_class, reference.per_class_iou, atol=1e-6)


@pytest.mark.backend
def test_confusion_report_result_is_scores_from_matrix():
    labels, predictions = _pixels_of(KNOWN_MATRIX)
    report = ConfusionReport(3, ["background", "circle", "square"])
    report.update_state(labels, np.eye(3, dtype="float32")[predictions])  # argmax taken
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(report.confusion), KNOWN_MATRIX)
    result = {k: float(v) for k, v in report.result().items()}
    assert list(result) == ["miou", "pixel_accuracy", "iou_background", "iou_circle",
                            "iou_square"]
    miou, accuracy, per_class = (keras.ops.convert_to_numpy(x)
                                 for x in scores_from_matrix(KNOWN_MATRIX))
    assert result["miou"] == pytest.approx(float(miou), abs=1e-7)
    assert result["pixel_accuracy"] == pytest.approx(float(accuracy), abs=1e-7)
    assert result["iou_background"] == pytest.approx(float(per_class[0]), abs=1e-7)
    assert result["iou_circle"] == pytest.approx(float(per_class[1]), abs=1e-7)
    assert np.isnan(result["iou_square"])
    assert list(ConfusionReport(2).result()) == ["miou", "pixel_accuracy", "iou_0", "iou_1"]


@pytest.mark.backend
def test_confusion_report_logs_every_entry_in_evaluate():
    k = 3
    rng = np.random.default_rng(1)
    images = rng.normal(size=(6, 4, 4, 2)).astype("float32")
    labels = rng.integers(0, k, size=(6, 4, 4)).astype("int32")
    inputs = keras.Input((4, 4, 2))
    model = keras.Model(inputs, keras.layers.Conv2D(k, 1, activation="softmax")(inputs))
    model.compile(loss="sparse_categorical_crossentropy", metrics=[ConfusionReport(k)])
    logs = model.evaluate(images, labels, batch_size=4, verbose=0, return_dict=True)
    matrix = segmentation_confusion_matrix(labels, model.predict(images, verbose=0).argmax(-1), k)
    reference = segmentation_scores(matrix)
    assert logs["miou"] == pytest.approx(reference.miou, abs=1e-5)
    assert logs["pixel_accuracy"] == pytest.approx(reference.pixel_accuracy, abs=1e-5)
    for c in range(k):
        expected = reference.per_class_iou[c]
        assert logs[f"iou_{c}"] == pytest.approx(expected, abs=1e-5, nan_ok=True)


def test_confusion_report_keeps_its_registered_name_for_old_checkpoints():
    # Checkpoints written before the class moved here name it "kerascv_suite>ConfusionReport".
    assert keras.saving.get_registered_name(ConfusionReport) == "kerascv_suite>ConfusionReport"
    config = keras.saving.serialize_keras_object(ConfusionReport(2, ["a", "b"], ignore_index=7))
    assert config["registered_name"] == "kerascv_suite>ConfusionReport"
    restored = keras.saving.deserialize_keras_object(config)
    assert type(restored) is ConfusionReport
    assert (restored.num_classes, restored.class_names, restored.ignore_index) == (2, ["a", "b"], 7)
