"""Mask R-CNN exports with its masks: the exported graph returns `masks
(batch, N, H, W)` beside the detections, and give the Keras model's detections and masks on
real photos; `kcv detect --model <export>` writes the same masks PNGs and COCO RLE as with
the Keras model.

One tiny model (the registry's test sizes at 64 x 64) exported once for the module. Its
mask predictor's kernel is scaled up, so random-weight mask probabilities spread over
0..1 (instead of all near 0.5) and the thresholded masks have shapes to compare.
"""

import json

import keras
import numpy as np
import pytest
from click.testing import CliRunner

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="detector graphs are traced with tf.function (kerascv_suite.export.graph)")]

# TFLite is converted from the same traced function a SavedModel holds (export.graph), so
# it checks that graph too. ONNX: RoIAlign's broadcasts have no ONNX op in tf2onnx
# (test_mask_rcnn_onnx_is_a_clear_error).
FORMATS = ("tflite",)
# The tolerances: box IoU >= 0.99, scores within 1e-4, same classes; masks
# thresholded at 0.5 with IoU >= 0.99.
MIN_IOU, ATOL = 0.99, 1e-4
SETTINGS = {"score_threshold": 0.02, "max_detections": 8}
SIZE = (64, 64)


def photos(size):
    """astronaut, coffee and chelsea (scikit-image's bundled photos) resized to `size`."""
    import cv2
    from skimage import data

    return np.stack([cv2.resize(getattr(data, name)()[..., :3], size[::-1],
                                interpolation=cv2.INTER_AREA)
                     for name in ("astronaut", "coffee", "chelsea")])


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(model, its InstanceDetector outputs on the photos, the photos, {format: path})."""
    from kerascv_suite.export import export_models
    from kerascv_suite.models import get_spec, with_metadata
    from kerascv_suite.models.detection.mask_rcnn import InstanceDetector

    keras.utils.set_random_seed(5)
    spec = get_spec("mask_rcnn_small")
    # Post-processing built in, so the Keras inference path is the model itself.
    model = spec.build(**{**spec.test_overrides, "input_shape": (*SIZE, 3), **SETTINGS})
    model = with_metadata(model, class_names=["red", "green", "blue"])
    predictor = model.mask_head.predictor
    predictor.kernel.assign(keras.ops.convert_to_numpy(predictor.kernel) * 40.0)
    images = photos(SIZE)
    expected = InstanceDetector(model, **SETTINGS).predict(images)
    folder = tmp_path_factory.mktemp("mask_rcnn")
    paths = export_models(model, {"tflite": folder / "mask_rcnn.tflite"}, **SETTINGS)
    return model, expected, images, paths


def test_the_keras_masks_have_shapes_to_compare(exported):
    _, expected, _, _ = exported
    counts = expected["num_detections"]
    assert counts.min() > 0
    kept = np.concatenate([expected["masks"][i, :n] for i, n in enumerate(counts)])
    share = (kept >= 0.5).mean(axis=(1, 2))
    assert ((share > 0.0) & (share < 1.0)).any(), share  # neither empty nor whole images


@pytest.mark.parametrize("export_format", FORMATS)
def test_export_gives_the_keras_detections_and_masks(exported, export_format):
    from kerascv_suite.export import ExportedDetector, match_detections, match_masks

    _, expected, images, paths = exported
    detector = ExportedDetector(paths[export_format])
    assert detector.has_masks and detector.metadata["task"] == "instance_segmentation"
    assert detector.metadata["export"]["outputs"][-1] == "masks"
    actual = detector.predict(images)
    assert actual["masks"].shape == (3, SETTINGS["max_detections"], *SIZE)
    min_iou, score_diff, mismatched = match_detections(
        expected, actual, SETTINGS["score_threshold"], ATOL)
    assert mismatched == 0 and min_iou >= MIN_IOU and score_diff <= ATOL, \
        (min_iou, score_diff, mismatched)
    assert match_masks(expected, actual) >= MIN_IOU
    for i, n in enumerate(actual["num_detections"]):
        assert not actual["masks"][i, n:].any()  # padding rows are zero
    # A higher threshold keeps the first detections, each with its own mask.
    cut = float(np.sort(actual["scores"][0, :actual["num_detections"][0]])[-3])
    fewer = ExportedDetector(paths[export_format], score_threshold=cut - 1e-6).predict(images)
    n = int(fewer["num_detections"][0])
    assert 0 < n < int(actual["num_detections"][0])
    np.testing.assert_array_equal(fewer["masks"][0, :n], actual["masks"][0, :n])
    assert not fewer["masks"][0, n:].any()


def test_verify_export_compares_the_masks(exported):
    from kerascv_suite.export import verify_export

    model, _, _, paths = exported
    # Three images, as the fixture's: the Keras predict function is not traced again.
    check = verify_export(model, paths["tflite"], "tflite", batch_size=3, **SETTINGS)
    assert check.ok(ATOL) and check.min_mask_iou >= MIN_IOU


def test_match_masks_sees_a_wrong_mask():
    from kerascv_suite.export import match_masks

    masks = np.zeros((1, 2, 8, 8), np.float32)
    masks[0, 0, 2:6, 2:6] = 0.9
    masks[0, 1, :4] = 0.8
    out = {"boxes": np.array([[[2, 2, 6, 6], [0, 0, 8, 4]]], np.float32),
           "scores": np.array([[0.9, 0.8]], np.float32), "classes": np.array([[0, 1]]),
           "num_detections": np.array([2]), "masks": masks}
    assert match_masks(out, out) == 1.0
    shifted = {**out, "masks": np.roll(masks, 1, axis=-1)}
    assert match_masks(out, shifted) == pytest.approx(12 / 20)


def test_kcv_detect_on_the_export_writes_the_keras_masks(exported, tmp_path):
    from pycocotools import mask as mask_utils

    from kerascv_suite.apps.cli import main
    from kerascv_suite.data import read_mask, write_image
    from kerascv_suite.export import match_detections
    from kerascv_suite.pipelines.detect_folder import DetectConfig, run

    model, _, _, paths = exported
    folder = tmp_path / "photos"
    folder.mkdir()
    from skimage import data

    for name in ("coffee", "chelsea"):
        write_image(folder / f"{name}.png", getattr(data, name)()[::4, ::4])
    run(DetectConfig(str(folder), "keras", out=str(tmp_path / "keras"),
                     **SETTINGS), model=model,
        log=lambda *_: None)
    result = CliRunner().invoke(main, [
        "detect", str(folder), "--model", str(paths["tflite"]), "--out",
        str(tmp_path / "tflite"), "--score-threshold", str(SETTINGS["score_threshold"]),
        "--max-detections", str(SETTINGS["max_detections"])],
        catch_exceptions=False)
    assert result.exit_code == 0, result.output
    for name in ("coffee", "chelsea"):
        records = {}
        for side in ("keras", "tflite"):
            records[side] = json.loads((tmp_path / side / "detections" / f"{name}.json")
                                       .read_text())["detections"]
        keras_dets, export_dets = records["keras"], records["tflite"]
        assert len(keras_dets) == len(export_dets) > 0
        assert {d["category"] for d in export_dets} <= {"red", "green", "blue"}
        as_contract = lambda dets: {
            "boxes": np.array([[d["bbox"][0], d["bbox"][1], d["bbox"][0] + d["bbox"][2],
                                d["bbox"][1] + d["bbox"][3]] for d in dets])[None],
            "scores": np.array([d["score"] for d in dets])[None],
            "classes": np.array([d["category_id"] for d in dets])[None],
            "num_detections": np.array([len(dets)]),
            "masks": np.stack([mask_utils.decode(d["segmentation"]) for d in dets])[None]
            .astype(np.float32)}
        expected, actual = as_contract(keras_dets), as_contract(export_dets)
        # JSON keeps 2 decimals of a box and 5 of a score.
        min_iou, score_diff, mismatched = match_detections(expected, actual,
                                                           SETTINGS["score_threshold"], 1e-4)
        assert mismatched == 0 and min_iou >= MIN_IOU and score_diff <= 1e-4
        from kerascv_suite.export import match_masks

        assert match_masks(expected, actual) >= MIN_IOU
        ids = {side: read_mask(tmp_path / side / "masks" / f"{name}.png")
               for side in records}
        assert ids["keras"].max() > 0
        assert (ids["keras"] == ids["tflite"]).mean() >= 0.99


def test_mask_rcnn_onnx_is_a_clear_error(exported, tmp_path):
    from kerascv_suite.export import export_model

    with pytest.raises(ValueError, match="TFL_BROADCAST_ARGS.*saved_model or tflite"):
        export_model(exported[0], tmp_path / "m.onnx", "onnx", **SETTINGS)
    assert not (tmp_path / "m.onnx").exists()
