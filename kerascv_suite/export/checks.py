"""Checking an export against the Keras model it came from, on the same inputs."""

from __future__ import annotations

import dataclasses

import numpy as np

from kerascv_suite.export.runtimes import ExportedModel


@dataclasses.dataclass(frozen=True)
class ExportCheck:
    """An export's outputs compared with the Keras model's on the same images.

    Attributes:
        max_abs_diff: largest absolute difference over the outputs (detectors: over the
            scores of matched detections).
        batch_size: images compared.
        min_iou: detectors: the lowest IoU of a matched pair of boxes (1.0 otherwise).
        mismatched: detectors: detections without a partner of the same class.
        min_mask_iou: Mask R-CNN: the lowest IoU of the masks (thresholded at 0.5) of a
            matched pair (1.0 otherwise).
    """

    max_abs_diff: float
    batch_size: int
    min_iou: float = 1.0
    mismatched: int = 0
    min_mask_iou: float = 1.0

    def ok(self, atol=1e-4, min_iou=0.99):
        return (self.max_abs_diff <= atol and self.min_iou >= min_iou and self.mismatched == 0
                and self.min_mask_iou >= min_iou)


def box_iou(a, b):
    """`(n, m)` IoU of xyxy boxes `a (n, 4)` and `b (m, 4)`."""
    a, b = np.asarray(a, np.float64)[:, None], np.asarray(b, np.float64)[None]
    inter = np.prod(np.clip(np.minimum(a[..., 2:], b[..., 2:]) -
                            np.maximum(a[..., :2], b[..., :2]), 0, None), axis=-1)
    area = lambda x: np.prod(np.clip(x[..., 2:] - x[..., :2], 0, None), axis=-1)
    union = area(a) + area(b) - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 1.0)


def matched_pairs(expected, actual, image):
    """Pairs the detections of image `image` of two contract dicts: same class, highest box
    IoU first, each detection at most once.

    Returns:
        `(pairs, unmatched_expected, unmatched_actual)`: `pairs` a list of
        `(expected row, actual row, box IoU)`, the others lists of rows.
    """
    side = []
    for out in (expected, actual):
        n = int(out["num_detections"][image])
        side.append((np.asarray(out["boxes"][image][:n]), np.asarray(out["classes"][image][:n])))
    (eb, ec), (ab, ac) = side
    iou = box_iou(eb, ab) if len(eb) and len(ab) else np.zeros((len(eb), len(ab)))
    iou = np.where(ec[:, None] == ac[None, :], iou, -1.0)
    used_e, used_a, pairs = set(), set(), []
    for flat in np.argsort(-iou, axis=None, kind="stable"):
        e, a = divmod(int(flat), iou.shape[1])
        if e in used_e or a in used_a or iou[e, a] < 0:
            continue
        used_e.add(e)
        used_a.add(a)
        pairs.append((e, a, float(iou[e, a])))
    return (pairs, [e for e in range(len(eb)) if e not in used_e],
            [a for a in range(len(ab)) if a not in used_a])


def match_detections(expected, actual, score_threshold=0.0, atol=1e-4):
    """Pairs the detections of two contract dicts image by image (`matched_pairs`) and
    measures how far apart they are.

    Detections scoring within `atol` of `score_threshold` may exist on one side only
    (rounding moves them across the threshold) and are not counted as mismatched.

    Returns:
        `(min_iou, max_score_diff, mismatched)`.
    """
    worst_iou, worst_score, mismatched = 1.0, 0.0, 0
    near = lambda s: abs(float(s) - score_threshold) <= atol
    for i in range(len(expected["num_detections"])):
        es, as_ = np.asarray(expected["scores"][i]), np.asarray(actual["scores"][i])
        pairs, lone_e, lone_a = matched_pairs(expected, actual, i)
        for e, a, iou in pairs:
            worst_iou = min(worst_iou, iou)
            worst_score = max(worst_score, abs(float(es[e]) - float(as_[a])))
        mismatched += sum(1 for e in lone_e if not near(es[e]))
        mismatched += sum(1 for a in lone_a if not near(as_[a]))
    return worst_iou, worst_score, mismatched


def match_masks(expected, actual, threshold=0.5):
    """The lowest IoU of the instance masks (`masks (batch, N, H, W)`, thresholded at
    `threshold`) of the detection pairs `matched_pairs` finds in two Mask R-CNN outputs;
    two empty masks agree (1.0). 1.0 when nothing is matched."""
    worst = 1.0
    for i in range(len(expected["num_detections"])):
        for e, a, _ in matched_pairs(expected, actual, i)[0]:
            m = np.asarray(expected["masks"][i][e]) >= threshold
            n = np.asarray(actual["masks"][i][a]) >= threshold
            union = np.logical_or(m, n).sum()
            worst = min(worst, float(np.logical_and(m, n).sum() / union) if union else 1.0)
    return worst


def random_inputs(shape, batch_size, needs_proposals=False, seed=0, num_proposals=64):
    """Uniform 0..255 images `(batch, *shape)` and, where wanted, random xyxy proposals."""
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 255, (batch_size, *shape)).astype("float32")
    if not needs_proposals:
        return images, None
    height, width = shape[:2]
    corner = rng.uniform(0, 0.7, (batch_size, num_proposals, 2))
    size = rng.uniform(0.1, 0.3, (batch_size, num_proposals, 2))
    scale = np.array([width, height], np.float32)
    proposals = np.concatenate([corner * scale, np.minimum(corner + size, 1.0) * scale], -1)
    return images, proposals.astype("float32")


def verify_export(model, path, format, batch_size=2, seed=0, atol=1e-4, **settings):
    """Runs the export and the Keras model's inference path on the same random images.

    Args:
        model: the Keras model that was exported.
        path: the export.
        format: its format.
        batch_size: images compared (uniform 0..255, the models' input range).
        seed: seed of the images (and of random proposals for Fast R-CNN / R-CNN).
        atol: score tolerance at the threshold (see `match_detections`).
        **settings: the detector post-processing the export was written with.

    Returns:
        An `ExportCheck`.
    """
    export = ExportedModel(path, format)
    if export.kind == "detector":
        from kerascv_suite.models.detection.inference import Detector
        from kerascv_suite.models.detection.mask_rcnn import (InstanceDetector,
                                                              is_instance_segmenter)

        masks = is_instance_segmenter(model)
        detector = (InstanceDetector if masks else Detector)(model, **settings)
        images, proposals = random_inputs((*detector.input_size, 3), batch_size,
                                          detector.needs_proposals, seed)
        expected = detector.predict(images, proposals)
        actual = export(*([images] if proposals is None else [images, proposals]))
        min_iou, diff, mismatched = match_detections(
            expected, actual, detector.decoder["score_threshold"], atol)
        mask_iou = match_masks(expected, actual) if masks else 1.0
        return ExportCheck(diff, batch_size, min_iou, mismatched, mask_iou)
    shape = tuple(model.inputs[0].shape[1:])
    images, _ = random_inputs(shape, batch_size, seed=seed)
    # One eager call: no predict function to trace for two images.
    import keras

    expected = keras.tree.map_structure(keras.ops.convert_to_numpy,
                                        model(images, training=False))
    actual = export(images)
    if export.kind == "segmenter":
        expected, actual = np.argmax(expected, axis=-1), actual["masks"]
        # Class maps: the share of pixels that differ (ties can flip a pixel).
        return ExportCheck(float(np.mean(expected != actual)), batch_size)
    expected, actual = by_name(expected, actual)
    diff = max(float(np.max(np.abs(np.asarray(actual[k]) - np.asarray(expected[k]))))
               for k in expected)
    return ExportCheck(max_abs_diff=diff, batch_size=batch_size)


def by_name(expected, actual):
    """`(expected, actual)` outputs as dicts with the same keys: a dict-output model's by
    its output names, otherwise by position (Keras' ONNX / TFLite names `output_0`...).

    Raises:
        ValueError: the export's outputs are not the model's (other names or count).
    """
    as_dict = lambda out: dict(out) if isinstance(out, dict) else dict(
        enumerate(out if isinstance(out, (list, tuple)) else [out]))
    expected, actual = as_dict(expected), as_dict(actual)
    if set(expected) != set(actual):
        if len(expected) != len(actual) or isinstance(next(iter(expected)), str):
            raise ValueError(f"The export's outputs {sorted(map(str, actual))} are not the "
                             f"model's {sorted(map(str, expected))}; re-export the model.")
        actual = dict(zip(expected, actual.values()))
    return expected, actual
