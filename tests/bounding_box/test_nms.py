"""batched_nms against a plain numpy greedy NMS on random cases, plus hand cases."""

import keras
import numpy as np
import pytest
from keras import ops

from kerascv_suite.bounding_box import batched_nms
from kerascv_suite.bounding_box.nms import top_k_pairs

pytestmark = pytest.mark.backend


def _iou(box, boxes):
    iw = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    ih = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = iw * ih
    area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    return inter / (area(box) + area(boxes) - inter)


def _reference(boxes, scores, classes, iou_threshold, score_threshold, max_detections):
    """Textbook greedy NMS, one class at a time (torchvision.ops.batched_nms semantics)."""
    keep = []
    order = np.argsort(-scores, kind="stable")
    order = order[scores[order] > score_threshold]
    for i in order:
        same = [j for j in keep if classes[j] == classes[i]]
        if not same or np.all(_iou(boxes[i], boxes[same]) <= iou_threshold):
            keep.append(i)
    return keep[:max_detections]


def _random_case(rng, batch, n, num_classes):
    xy = rng.uniform(0, 100, (batch, n, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(5, 40, (batch, n, 2))], -1).astype("float32")
    scores = rng.permutation(batch * n).reshape(batch, n).astype("float32") / (batch * n)
    classes = rng.integers(0, num_classes, (batch, n)).astype("int32")
    return boxes, scores, classes


@pytest.mark.parametrize("seed", range(6))
def test_matches_numpy_greedy_reference(seed):
    rng = np.random.default_rng(seed)
    boxes, scores, classes = _random_case(rng, 3, 60, 1 + seed % 3)
    out = batched_nms(boxes, scores, classes, iou_threshold=0.45, score_threshold=0.2,
                      max_detections=20)
    out = {k: ops.convert_to_numpy(v) for k, v in out.items()}
    for b in range(3):
        expected = _reference(boxes[b], scores[b], classes[b], 0.45, 0.2, 20)
        n = out["num_detections"][b]
        assert n == len(expected)
        np.testing.assert_array_equal(out["indices"][b, :n], expected)
        np.testing.assert_allclose(out["boxes"][b, :n], boxes[b, expected])
        np.testing.assert_allclose(out["scores"][b, :n], scores[b, expected])
        np.testing.assert_array_equal(out["classes"][b, :n], classes[b, expected])
        assert np.all(out["classes"][b, n:] == -1) and np.all(out["scores"][b, n:] == 0)


def test_hand_case_class_aware_and_padding():
    boxes = np.array([[[0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 10], [50, 50, 60, 60]]],
                     "float32")
    scores = np.array([[0.9, 0.8, 0.7, 0.6]], "float32")
    classes = np.array([[0, 0, 1, -1]], "int32")  # the last box is padding
    out = batched_nms(boxes, scores, classes, iou_threshold=0.5, max_detections=5)
    # Box 1 overlaps box 0 (IoU 81/119 > .5, same class) -> dropped; box 2 is another class.
    np.testing.assert_array_equal(ops.convert_to_numpy(out["indices"]), [[0, 2, -1, -1, -1]])
    assert ops.convert_to_numpy(out["num_detections"]).tolist() == [2]
    agnostic = batched_nms(boxes, scores, None, iou_threshold=0.5, max_detections=5)
    np.testing.assert_array_equal(ops.convert_to_numpy(agnostic["indices"])[0, :2], [0, 3])


def test_runs_inside_a_compiled_graph():
    rng = np.random.default_rng(0)
    boxes, scores, classes = _random_case(rng, 2, 40, 2)

    class Detect(keras.layers.Layer):
        def call(self, boxes, scores, classes):
            return batched_nms(boxes, scores, classes, max_detections=10, pre_nms_top_k=30)

    boxes_in = keras.Input((40, 4))
    scores_in = keras.Input((40,))
    classes_in = keras.Input((40,), dtype="int32")
    model = keras.Model([boxes_in, scores_in, classes_in], Detect()(boxes_in, scores_in,
                                                                    classes_in))
    out = model.predict([boxes, scores, classes], verbose=0)  # jit-compiled on every backend
    eager = batched_nms(boxes, scores, classes, max_detections=10, pre_nms_top_k=30)
    np.testing.assert_array_equal(out["indices"], ops.convert_to_numpy(eager["indices"]))
    assert out["boxes"].shape == (2, 10, 4)


@pytest.mark.parametrize("seed", range(2))
def test_top_k_pairs_equals_top_k_of_the_flat_scores(seed):
    rng = np.random.default_rng(seed)
    scores = rng.permutation(2 * 300 * 5).reshape(2, 300, 5).astype("float32")  # distinct
    for k in (5, 10, 37, 200, 1500):
        top, box, label = (ops.convert_to_numpy(t) for t in top_k_pairs(scores, k))
        expected, index = (ops.convert_to_numpy(t) for t in ops.top_k(
            ops.reshape(scores, (2, -1)), k=min(k, 1500)))
        np.testing.assert_array_equal(top, expected)
        np.testing.assert_array_equal(box * 5 + label, index)
    # Exact ties at the cut: the same scores, each from a distinct pair that holds it (which
    # of the tied pairs comes first is the backend's top_k order: torch's is not stable).
    scores[0, 7::40, 1] = scores[0].max() - 0.5
    for k in (3, 6):
        top, box, label = (ops.convert_to_numpy(t) for t in top_k_pairs(scores, k))
        expected = ops.convert_to_numpy(ops.top_k(ops.reshape(scores, (2, -1)), k=k)[0])
        np.testing.assert_array_equal(top, expected)
        np.testing.assert_array_equal(scores[np.arange(2)[:, None], box, label], top)
        assert all(len(set(zip(b, c))) == k for b, c in zip(box, label))


@pytest.mark.parametrize("seed", range(2))
def test_few_valid_candidates_take_the_short_path_with_the_same_result(seed):
    # With score threshold 0.9 each image keeps ~20 of 200 candidates, under the short
    # path's 50; image 1 of seed 0 gets every score valid, forcing the full path for the
    # whole batch. Both must equal the textbook greedy NMS.
    rng = np.random.default_rng(seed)
    boxes, scores, classes = _random_case(rng, 2, 200, 3)
    if seed == 0:
        scores[1] = 0.95 + scores[1] / 100
    out = batched_nms(boxes, scores, classes, iou_threshold=0.3, score_threshold=0.9,
                      max_detections=30)
    out = {k: ops.convert_to_numpy(v) for k, v in out.items()}
    for b in range(2):
        expected = _reference(boxes[b], scores[b], classes[b], 0.3, 0.9, 30)
        n = out["num_detections"][b]
        assert n == len(expected)
        np.testing.assert_array_equal(out["indices"][b, :n], expected)
        np.testing.assert_allclose(out["boxes"][b, :n], boxes[b, expected])
