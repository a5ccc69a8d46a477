"""batched_nms against a plain numpy greedy NMS on random cases, plus hand cases."""


import keras
import numpy as np
import pytest
from keras import ops

from kerascv_suite.bounding_box import BoxCoder, batched_nms, rpn_anchors
from kerascv_suite.bounding_box.nms import top_k_pairs
from kerascv_suite.models.detection.detection_output import DetectionDecoder
from kerascv_suite.models.detection.proposals import clip_boxes, detect, generate_proposals

pytestmark = pytest.mark.backend


def _iou(box, boxes):
    """float32 IoU with `keras.utils.bounding_boxes.compute_iou`'s operations, in its order
    (including its `+ epsilon` on the union), so IoUs at the threshold compare the same."""
    box, boxes = np.float32(box), np.float32(boxes)
    iw = np.maximum(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]),
                    np.float32(0))
    ih = np.maximum(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]),
                    np.float32(0))
    inter = ih * iw
    area = lambda b: (b[..., 3] - b[..., 1]) * (b[..., 2] - b[..., 0])
    return inter / (area(box) + area(boxes) - inter + np.float32(keras.config.epsilon()))


def _reference(boxes, scores, classes, iou_threshold, score_threshold, max_detections,
               pre_nms_top_k=None):
    """Textbook greedy NMS, one class at a time (torchvision.ops.batched_nms semantics):
    the `pre_nms_top_k` best boxes in, boxes of other classes never compared."""
    keep = []
    order = np.argsort(-scores, kind="stable")[:pre_nms_top_k]
    order = order[scores[order] > score_threshold]
    for i in order:
        same = [j for j in keep if classes[j] == classes[i]]
        if not same or np.all(_iou(boxes[i], boxes[same]) <= np.float32(iou_threshold)):
            keep.append(i)
    return keep[:max_detections]


def _check(out, boxes, scores, classes, expected, max_detections):
    out = {k: ops.convert_to_numpy(v) for k, v in out.items()}
    assert out["boxes"].shape == (len(expected), max_detections, 4)
    for b, keep in enumerate(expected):
        n = out["num_detections"][b]
        assert n == len(keep)
        np.testing.assert_array_equal(out["indices"][b, :n], keep)
        np.testing.assert_array_equal(out["boxes"][b, :n], boxes[b, keep])
        np.testing.assert_array_equal(out["scores"][b, :n], scores[b, keep])
        np.testing.assert_array_equal(out["classes"][b, :n], classes[b, keep])
        assert np.all(out["classes"][b, n:] == -1) and np.all(out["indices"][b, n:] == -1)
        assert np.all(out["scores"][b, n:] == 0) and np.all(out["boxes"][b, n:] == 0)


def _coco_case(rng, batch, n, num_classes=80, size=(800, 1333), pairs=150, threshold=0.5):
    """Random fractional boxes on a COCO-sized image, with `pairs` same-class pairs whose
    IoU is the threshold to within a few float32 steps (each side of it), scored next to
    each other. Scores are distinct."""
    height, width = size
    wh = rng.uniform(20, 400, (batch, n, 2))
    xy = rng.uniform(0, 1, (batch, n, 2)) * (np.array([width, height]) - wh)
    boxes = np.concatenate([xy, xy + wh], -1)
    classes = rng.integers(0, num_classes, (batch, n))
    scores = rng.permutation(batch * n).reshape(batch, n) / (batch * n)
    for b in range(batch):
        first = rng.choice(n - 1, pairs, replace=False)
        for i in first:
            # A horizontal shift d of a box of width w leaves IoU (w - d) / (w + d).
            r = threshold * (1 + rng.uniform(-4e-7, 4e-7))
            w = boxes[b, i, 2] - boxes[b, i, 0]
            d = w * (1 - r) / (1 + r)
            boxes[b, i + 1] = boxes[b, i] + [d, 0, d, 0]
            classes[b, i + 1] = classes[b, i]
            scores[b, i + 1] = scores[b, i] - 0.1 / (batch * n)
    return boxes.astype("float32"), scores.astype("float32"), classes.astype("int32")


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


@pytest.mark.parametrize("block_size, max_detections", [(512, 100), (128, 1000), (64, 150)])
def test_blockwise_equals_greedy_reference_at_coco_sizes(block_size, max_detections):
    # 80 classes on 1333 x 800 images, with pairs at the IoU threshold give or take a float32
    # step: a class-offset trick (class * 1334 + x, ~1e5 where a float32 step is 0.008 px)
    # misjudges some of them. 700 candidates run one dense block, 6 blocks against a kept
    # list of up to 8 chunks (every image fills it before the last block), or 11 blocks
    # whose kept list fills early (the loop stops).
    rng = np.random.default_rng(block_size)
    boxes, scores, classes = _coco_case(rng, 2, 700)
    iou_pairs = [_iou(boxes[0, i], boxes[0, i + 1:i + 2])[0] for i in range(699)
                 if classes[0, i] == classes[0, i + 1]]
    assert sum(v == np.float32(0.5) for v in iou_pairs) > 3  # exactly at the threshold
    assert sum(np.float32(0.5) < v < 0.5001 for v in iou_pairs) > 10
    assert sum(0.4999 < v < np.float32(0.5) for v in iou_pairs) > 10
    out = batched_nms(boxes, scores, classes, iou_threshold=0.5, score_threshold=0.05,
                      max_detections=max_detections, block_size=block_size)
    expected = [_reference(boxes[b], scores[b], classes[b], 0.5, 0.05, max_detections)
                for b in range(2)]
    if block_size == 128:
        assert min(len(e) for e in expected) < max_detections  # every box visited
    _check(out, boxes, scores, classes, expected, max_detections)


def test_class_agnostic_blockwise_with_chains():
    # A row of boxes each overlapping the next: the greedy result alternates, and every
    # block's in-block fixed point needs many sweeps; blocks of 32 over 200 boxes.
    x = np.arange(200, dtype="float32") * 4.0
    boxes = np.stack([x, x * 0, x + 10, x * 0 + 10], -1)[None]
    scores = np.linspace(1, 0.5, 200, dtype="float32")[None]
    classes = np.zeros((1, 200), "int32")
    out = batched_nms(boxes, scores, None, iou_threshold=0.4, max_detections=200,
                      block_size=32)
    expected = [_reference(boxes[0], scores[0], classes[0], 0.4, 0.0, 200)]
    assert len(expected[0]) == 100  # IoU(i, i+1) = 6/14 > 0.4, IoU(i, i+2) = 2/18
    _check(out, boxes, scores, classes, expected, 200)


@pytest.mark.parametrize("block_size", [16, 512])
def test_pre_nms_top_k_below_max_detections_is_honoured(block_size):
    rng = np.random.default_rng(3)
    boxes, scores, classes = _coco_case(rng, 2, 300, num_classes=3, pairs=20)
    out = batched_nms(boxes, scores, classes, iou_threshold=0.5, max_detections=60,
                      pre_nms_top_k=40, block_size=block_size)
    expected = [_reference(boxes[b], scores[b], classes[b], 0.5, 0.0, 60, pre_nms_top_k=40)
                for b in range(2)]
    assert all(30 < len(e) <= 40 for e in expected)
    _check(out, boxes, scores, classes, expected, 60)


def test_detection_decoder_honours_pre_nms_top_k():
    # 5 candidates (box, class pairs) for 20 output rows: at most 5 detections, padded.
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 200, (2, 50, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(10, 60, (2, 50, 2))], -1).astype("float32")
    scores = rng.uniform(size=(2, 50, 4)).astype("float32")
    out = DetectionDecoder(score_threshold=0.0, iou_threshold=0.5, max_detections=20,
                           pre_nms_top_k=5)([boxes, scores])
    out = {k: ops.convert_to_numpy(v) for k, v in out.items()}
    assert out["boxes"].shape == (2, 20, 4)
    for b in range(2):
        flat = scores[b].reshape(-1)
        keep = _reference(np.repeat(boxes[b], 4, axis=0), flat, np.tile(np.arange(4), 50),
                          0.5, 0.0, 20, pre_nms_top_k=5)
        n = out["num_detections"][b]
        assert n == len(keep) and 1 <= n <= 5
        np.testing.assert_array_equal(out["scores"][b, :n], flat[keep])
        np.testing.assert_array_equal(out["classes"][b, :n], np.array(keep) % 4)
        np.testing.assert_array_equal(out["boxes"][b, :n], boxes[b, np.array(keep) // 4])
        assert np.all(out["classes"][b, n:] == -1)


def test_two_stage_detect_and_proposals_honour_pre_nms_top_k():
    rng = np.random.default_rng(1)
    xy = rng.uniform(0, 100, (2, 40, 2))
    rois = np.concatenate([xy, xy + rng.uniform(8, 40, (2, 40, 2))], -1).astype("float32")
    scores = ops.convert_to_numpy(ops.softmax(rng.normal(0, 2, (2, 40, 4)), axis=-1))
    out = detect(scores.astype("float32"), None, rois, np.ones((2, 40), bool), (128, 128),
                 score_threshold=0.0, nms_threshold=0.5, max_detections=30, pre_nms_top_k=6)
    out = {k: ops.convert_to_numpy(v) for k, v in out.items()}
    assert out["boxes"].shape == (2, 30, 4)
    for b in range(2):
        flat = scores[b, :, 1:].reshape(-1)
        keep = _reference(np.repeat(rois[b], 3, axis=0), flat, np.tile(np.arange(3), 40), 0.5,
                          0.0, 30, pre_nms_top_k=6)
        n = out["num_detections"][b]
        assert n == len(keep) and n <= 6
        np.testing.assert_allclose(out["scores"][b, :n], flat[keep])
        np.testing.assert_array_equal(out["classes"][b, :n], np.array(keep) % 3)

    anchors = rpn_anchors((4, 4), 16, (16, 32, 64))
    logits = rng.normal(size=(2, 144)).astype("float32")
    deltas = rng.normal(scale=0.2, size=(2, 144, 4)).astype("float32")
    boxes, valid = generate_proposals(logits, deltas, anchors, (64, 64), pre_nms_top_k=8,
                                      post_nms_top_k=20, nms_threshold=0.7)
    assert ops.convert_to_numpy(boxes).shape == (2, 20, 4)
    # The 8 candidates: the decoded, clipped anchors of the 8 best objectness logits.
    decoded = ops.convert_to_numpy(clip_boxes(BoxCoder().decode(anchors[None], deltas),
                                              (64, 64)))
    top = np.argsort(-logits, axis=1, kind="stable")[:, :8]
    ranked = np.take_along_axis(decoded, top[..., None], axis=1)
    assert np.all(ranked[..., 2:] - ranked[..., :2] >= 1e-3)  # none under min_size
    boxes, valid = ops.convert_to_numpy(boxes), ops.convert_to_numpy(valid)
    for b in range(2):
        keep = _reference(ranked[b], np.linspace(1, 0.5, 8), np.zeros(8), 0.7, 0.0, 20)
        assert valid[b].sum() == len(keep) and 3 <= len(keep) <= 8
        np.testing.assert_array_equal(boxes[b, :len(keep)], ranked[b, keep])


def test_blockwise_runs_inside_a_compiled_graph():
    rng = np.random.default_rng(0)
    boxes, scores, classes = _coco_case(rng, 2, 300, num_classes=4, pairs=20)

    class Detect(keras.layers.Layer):
        def call(self, boxes, scores, classes):
            return batched_nms(boxes, scores, classes, max_detections=120, pre_nms_top_k=250,
                               block_size=64)

    inputs = [keras.Input((300, 4)), keras.Input((300,)), keras.Input((300,), dtype="int32")]
    model = keras.Model(inputs, Detect()(*inputs))
    out = model.predict([boxes, scores, classes], verbose=0)  # jit-compiled on every backend
    expected = [_reference(boxes[b], scores[b], classes[b], 0.5, 0.0, 120, pre_nms_top_k=250)
                for b in range(2)]
    _check(out, boxes, scores, classes, expected, 120)


@pytest.mark.parametrize("num_classes", [1, 80])
def test_same_kept_indices_as_torchvision(num_classes, torchvision):
    import torch

    rng = np.random.default_rng(num_classes)
    boxes, scores, classes = _coco_case(rng, 2, 1500, num_classes=num_classes, pairs=0)
    out = batched_nms(boxes, scores, classes, iou_threshold=0.6, score_threshold=0.1,
                      max_detections=1500, block_size=256)
    expected = []
    for b in range(2):
        # torchvision's own batched_nms offsets coordinates by class (as we used to); per
        # class ops.nms is its "vanilla" path, the exact greedy result.
        ok = np.flatnonzero(scores[b] > 0.1)
        keep = []
        for c in np.unique(classes[b, ok]):
            index = ok[classes[b, ok] == c]
            kept = torchvision.ops.nms(torch.from_numpy(boxes[b, index]),
                                       torch.from_numpy(scores[b, index]), 0.6)
            keep.extend(index[kept.numpy()])
        keep = np.array(keep)[np.argsort(-scores[b, keep], kind="stable")]
        assert len(keep) > 1000 if num_classes == 80 else len(keep) > 300
        expected.append(keep)
    _check(out, boxes, scores, classes, expected, 1500)
