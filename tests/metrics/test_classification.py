"""Classification metrics against hand-computed values and scikit-learn on the same inputs."""

import numpy as np
import pytest
from sklearn import metrics as skm

from kerascv_suite.metrics import (accuracy, classification_report, confusion_matrix,
                                   precision_recall_f1, top_k_accuracy)


def test_hand_computed_three_class_case():
    # Labels 0,0,1,2 with predictions 0,1,1,1 (argmax of each row).
    probabilities = np.array(
        [[0.7, 0.2, 0.1], [0.3, 0.6, 0.1], [0.1, 0.8, 0.1], [0.2, 0.5, 0.3]]
    )
    labels = np.array([0, 0, 1, 2])
    report = classification_report(probabilities, labels, ["a", "b", "c"])
    # 2 of 4 argmaxes are right.
    assert report.accuracy == 0.5
    # Rows = true class: a -> {a:1, b:1}; b -> {b:1}; c -> {b:1}.
    np.testing.assert_array_equal(report.confusion, [[1, 1, 0], [0, 1, 0], [0, 1, 0]])
    # a: P 1/1, R 1/2, F1 2*1*0.5/1.5 = 2/3; b: P 1/3, R 1, F1 2*(1/3)/(4/3) = 1/2;
    # c: never predicted, P = R = F1 = 0 (zero_division=0).
    np.testing.assert_allclose(report.precision, [1, 1 / 3, 0])
    np.testing.assert_allclose(report.recall, [0.5, 1, 0])
    np.testing.assert_allclose(report.f1, [2 / 3, 0.5, 0])
    np.testing.assert_array_equal(report.support, [2, 1, 1])
    # Top-2: sample 1 (label 0, scores 0.3 second) and sample 3 (label 2, 0.3 second) hit;
    # every sample's label is within its top 2 -> 1.0; top-1 equals accuracy.
    assert top_k_accuracy(probabilities, labels, k=2) == 1.0
    assert top_k_accuracy(probabilities, labels, k=1) == 0.5
    # With 3 classes, top-5 covers every class.
    assert report.top5_accuracy == 1.0


def test_matches_scikit_learn_on_random_predictions():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(500, 12))
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = rng.integers(0, 12, size=500)
    predictions = probabilities.argmax(axis=1)
    report = classification_report(probabilities, labels)

    assert report.accuracy == pytest.approx(skm.accuracy_score(labels, predictions))
    assert report.top5_accuracy == pytest.approx(
        skm.top_k_accuracy_score(labels, probabilities, k=5, labels=range(12))
    )
    np.testing.assert_array_equal(
        report.confusion, skm.confusion_matrix(labels, predictions, labels=range(12))
    )
    p, r, f, s = skm.precision_recall_fscore_support(
        labels, predictions, labels=range(12), zero_division=0
    )
    np.testing.assert_allclose(report.precision, p)
    np.testing.assert_allclose(report.recall, r)
    np.testing.assert_allclose(report.f1, f)
    np.testing.assert_array_equal(report.support, s)
    assert report.macro_f1 == pytest.approx(
        skm.f1_score(labels, predictions, average="macro", labels=range(12), zero_division=0)
    )


def test_confusion_and_prf_of_a_class_with_no_samples():
    matrix = confusion_matrix([0, 0, 1], [0, 2, 1], num_classes=3)
    precision, recall, f1, support = precision_recall_f1(matrix)
    # Class 2 has no true samples and one false positive: P = 0/1, R = 0 (0/0 -> 0).
    assert precision[2] == 0 and recall[2] == 0 and f1[2] == 0 and support[2] == 0
    assert accuracy(np.eye(3)[[0, 2, 1]], [0, 0, 1]) == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    "probabilities, labels, message",
    [
        (np.ones((2, 3)), [0, 3], "0..2"),
        (np.ones((2, 3)), [0], "labels.shape"),
        (np.ones((0, 3)), [], "no samples"),
    ],
)
def test_bad_input_is_named(probabilities, labels, message):
    with pytest.raises(ValueError, match=message):
        classification_report(probabilities, labels)


def test_class_names_must_match_the_outputs():
    with pytest.raises(ValueError, match="predicts 3 classes"):
        classification_report(np.eye(3), [0, 1, 2], ["a", "b"])
