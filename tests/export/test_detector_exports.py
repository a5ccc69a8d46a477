"""Every detector family exported as a detector (decode + NMS inside) to SavedModel, ONNX
and TFLite gives the Keras inference path's detections on real photos.

One export per family and format, shared by the module (exporting is the slow part).
Small registry variants with random weights and a low score threshold, so every image has
detections to compare.
"""

import keras
import numpy as np
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="detector graphs are traced with tf.function (kerascv_suite.export.graph)")]

FORMATS = ("saved_model", "onnx", "tflite")
SUFFIX = {"saved_model": "", "onnx": ".onnx", "tflite": ".tflite"}
# The tolerances: after matching, box IoU >= 0.99, scores within 1e-4, same classes.
MIN_IOU, ATOL = 0.99, 1e-4
# name -> (builder overrides, post-processing, formats checked)
FAMILIES = {
    "ssd300_tiny": ({}, {"score_threshold": 0.02, "max_detections": 50}, FORMATS),
    "yolo_v1_tiny": ({"input_shape": (96, 96, 3)},
                     {"score_threshold": 0.02, "max_detections": 30}, FORMATS),
    # R-CNN-family ONNX: exact since export.onnx_fixes (integer FloorDiv in RoI pooling).
    "faster_rcnn_small": ({}, {"score_threshold": 0.02, "max_detections": 30}, FORMATS),
    "fast_rcnn_small": ({}, {"score_threshold": 0.02, "max_detections": 30}, FORMATS),
    # R-CNN's warp (like RoIAlign) converts to TFL_BROADCAST_ARGS, which has no ONNX op:
    # a one-line error (tests/export/test_mask_rcnn_export.py).
    "rcnn_small": ({}, {"score_threshold": 0.02, "max_detections": 30},
                   ("saved_model", "tflite")),
}


def photos(size):
    """astronaut, coffee and chelsea (scikit-image's bundled photos) resized to `size`."""
    import cv2
    from skimage import data

    height, width = size
    return np.stack([cv2.resize(getattr(data, name)()[..., :3], (width, height),
                                interpolation=cv2.INTER_AREA)
                     for name in ("astronaut", "coffee", "chelsea")])


@pytest.fixture(scope="module", params=list(FAMILIES))
def family(request, tmp_path_factory):
    """(name, Keras Detector, its detections on the photos, inputs, {format: export})."""
    from kerascv_suite.export import export_models
    from kerascv_suite.models import build
    from kerascv_suite.models.detection.inference import Detector

    name = request.param
    overrides, settings, formats = FAMILIES[name]
    keras.utils.set_random_seed(3)
    model = with_names(build(name, **overrides))
    if name.startswith("yolo"):
        # Random YOLO v1 outputs hover around 0 and clip to zero scores; lift the last
        # layer's bias so that boxes score (0.2..0.6).
        last = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)][-1]
        last.bias.assign(keras.ops.convert_to_numpy(last.bias) + 0.5)
    detector = Detector(model, **settings)
    images = photos(detector.input_size)
    proposals = None
    if detector.needs_proposals:
        from kerascv_suite.export import random_inputs

        _, proposals = random_inputs((*detector.input_size, 3), len(images), True, seed=1,
                                     num_proposals=48)
    expected = detector.predict(images, proposals)
    folder = tmp_path_factory.mktemp(name)
    paths = export_models(model, {f: folder / f"{name}{SUFFIX[f]}" for f in formats},
                          num_proposals=48, **settings)
    return name, detector, expected, (images, proposals), paths


def with_names(model):
    from kerascv_suite.models import describe, with_metadata
    from kerascv_suite.models.detection.inference import detector_num_classes

    names = [f"thing{c}" for c in range(detector_num_classes(model))]
    return with_metadata(model, class_names=names) if describe(model)["class_names"] is None \
        else model


@pytest.mark.parametrize("export_format", FORMATS)
def test_export_gives_the_keras_detections(family, export_format):
    from kerascv_suite.export import ExportedDetector, match_detections

    name, detector, expected, (images, proposals), paths = family
    if export_format not in paths:
        pytest.skip(f"{name}: no ONNX (see FAMILIES)")
    assert expected["num_detections"].min() > 0, "no detections to compare"
    exported = ExportedDetector(paths[export_format])
    actual = exported.predict(images, proposals)
    assert actual["boxes"].shape == expected["boxes"].shape
    min_iou, score_diff, mismatched = match_detections(
        expected, actual, detector.decoder["score_threshold"], ATOL)
    assert mismatched == 0 and min_iou >= MIN_IOU and score_diff <= ATOL, \
        (min_iou, score_diff, mismatched)
    # The export tells its consumer what it is.
    assert exported.class_names == describe_names(detector)
    assert exported.input_size == detector.input_size
    assert exported.needs_proposals == detector.needs_proposals
    assert exported.metadata["export"]["decoder"]["score_threshold"] == pytest.approx(
        detector.decoder["score_threshold"])
    # Dynamic batch: one image gives that image's detections.
    one = exported.predict(images[1:2], None if proposals is None else proposals[1:2])
    n = int(one["num_detections"][0])
    assert n == int(actual["num_detections"][1])
    np.testing.assert_allclose(one["scores"][0, :n], actual["scores"][1, :n], atol=ATOL)


def describe_names(detector):
    from kerascv_suite.models import describe

    return describe(detector.model)["class_names"]
