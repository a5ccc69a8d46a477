import keras
import numpy as np
import pytest

from kerascv_suite import models
from kerascv_suite.models import detection
from kerascv_suite.models.detection import YoloV1Decoder
from kerascv_suite.testing import run_model_test
from tests.models.detection_helpers import (check_inference_contract, keras_round_trip,
                                            synthetic_targets)

SMALL = {"input_shape": (64, 64, 3), "num_classes": 3, "width": 0.25, "fc_units": 32}


def test_yolo_v1_paper_output_and_params():
    model = models.build("yolo_v1")
    # Paper sec. 2: S = 7, B = 2, C = 20 on PASCAL VOC -> a 7 x 7 x 30 tensor at 448 x 448.
    assert model.output.shape == (None, 7, 7, 30)
    # Fig. 3: 24 convolutional layers and 2 fully connected layers.
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds.count("Conv2D") == 24 and kinds.count("Dense") == 2
    # Hand count from Fig. 3 (written out in yolo_v1.py): 60,155,968 convolution parameters
    # + fc1 205,524,992 + output 6,022,590.
    assert model.count_params() == 271_703_550


@pytest.mark.backend
@pytest.mark.parametrize("backbone", ["yolo", "tiny"])
def test_yolo_v1_trains_with_its_loss_and_detects(backbone):
    overrides = dict(SMALL, width=1 / 16) if backbone == "yolo" else SMALL
    model = models.build("yolo_v1", backbone=backbone, batch_norm=backbone == "tiny",
                         **overrides)
    assert model.output.shape == (None, 7, 7, 2 * 5 + 3)
    loss = detection.make_loss(model)
    assert (loss.num_classes, loss.num_boxes, loss.image_size) == (3, 2, (64, 64))
    run_model_test(model, (2, 64, 64, 3), expected_output_shape=(2, 7, 7, 13), loss=loss,
                   targets=synthetic_targets(2, 64, 3))

    detector = detection.make_inference_model(model, score_threshold=0.0, max_detections=20)
    images = np.random.default_rng(1).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    check_inference_contract(detector, images, num_classes=3, max_detections=20)
    restored = keras_round_trip(detector, images)
    assert restored.get_layer("detections").get_config()["max_detections"] == 20


@pytest.mark.backend
def test_yolo_v1_decoder_hand_case():
    # S=2, B=2, C=2 on 100x100: predictor 0 of cell (0, 0) has offset (0.36, 0.64), square
    # roots (0.6, 0.8) -> centre (18, 32), 36 x 64 -> xyxy (0, 0, 36, 64); confidence 0.5 and
    # class outputs (0.2, 0.7) give class scores 0.1 (below 0.2, dropped) and 0.35.
    grid = np.zeros((1, 2, 2, 12), "float32")
    grid[0, 0, 0] = [0.36, 0.64, 0.6, 0.8, 0.5, 0, 0, 0, 0, 0, 0.2, 0.7]
    out = YoloV1Decoder(num_boxes=2, image_size=(100, 100), score_threshold=0.2,
                        max_detections=3)(grid)
    out = {k: keras.ops.convert_to_numpy(v) for k, v in out.items()}
    assert out["num_detections"].tolist() == [1]
    np.testing.assert_allclose(out["boxes"][0, 0], [0, 0, 36, 64], atol=1e-4)
    np.testing.assert_allclose(out["scores"][0], [0.35, 0, 0], atol=1e-6)
    assert out["classes"][0].tolist() == [1, -1, -1]


def test_make_inference_model_rejects_other_models():
    with pytest.raises(ValueError, match="YOLO v1 or SSD"):
        detection.make_inference_model(models.build("lenet5"))


def test_exported_detector_is_a_detector(tmp_path):
    # `kcv export` of the inference model: the SavedModel returns the detection contract,
    # decode + NMS included (tensorflow backend, where SavedModel export runs).
    import tensorflow as tf

    from kerascv_suite.export import export_model

    model = models.build("yolo_v1_tiny", **SMALL)
    detector = detection.make_inference_model(model, score_threshold=0.0, max_detections=5)
    images = np.random.default_rng(2).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    expected = detector.predict(images, verbose=0)
    export_model(detector, tmp_path / "detector")
    artifact = tf.saved_model.load(str(tmp_path / "detector"))
    served = artifact.serve(tf.constant(images))
    assert set(served) == set(expected)
    for key, value in expected.items():
        np.testing.assert_allclose(np.asarray(served[key]), value, atol=1e-4)


# TensorFlow only: jax compiles the NMS loops for ~15 s on the 2-core CI machine;
# tests/bounding_box/test_nms.py checks the pieces on every backend.
def test_yolo_v1_decoder_equals_ranking_every_pair():
    # The decoder ranks (box, class) pairs before gathering boxes; the result must equal
    # handing NMS every pair with its box.
    from keras import ops

    from kerascv_suite.bounding_box import batched_nms

    grid = np.random.default_rng(0).uniform(0, 1, (2, 7, 7, 2 * 5 + 4)).astype("float32")
    decoder = YoloV1Decoder(num_boxes=2, image_size=(224, 224), score_threshold=0.2,
                            max_detections=40, pre_nms_top_k=150)
    out = {k: ops.convert_to_numpy(v) for k, v in decoder(grid).items()}

    # The paper's decoding (sec. 2) written out in numpy.
    pred = grid[..., :10].reshape(2, 49, 2, 5)
    row, col = np.divmod(np.arange(49), 7)
    centre = (np.stack([col, row], -1)[None, :, None] + pred[..., :2]) / 7
    half = pred[..., 2:4] ** 2 / 2
    boxes = np.clip(np.concatenate([centre - half, centre + half], -1), 0, 1) * 224
    scores = pred[..., 4:5] * grid[..., 10:].reshape(2, 49, 1, 4)  # (2, 49, 2, 4)
    old = batched_nms(np.repeat(boxes.reshape(2, 98, 4), 4, axis=1), scores.reshape(2, -1),
                      np.tile(np.arange(4, dtype="int32"), (2, 98)), iou_threshold=0.5,
                      score_threshold=0.2, max_detections=40, pre_nms_top_k=150)
    assert out["num_detections"].min() > 5
    for key in ("boxes", "scores", "classes", "num_detections"):
        np.testing.assert_allclose(out[key], ops.convert_to_numpy(old[key]), atol=1e-4)


# TensorFlow only: core layers alone (Conv2D, Flatten), and jax takes ~15 s here on the
# 2-core CI machine; the dense-head test trains the same loss and decoder on every backend.
def test_yolo_v1_conv_head_shares_weights_across_cells():
    # head="conv" (a CPU variant, not the paper's): the stride-16 tiny backbone maps 112x112
    # to 7x7 = S x S, so a 1x1 "predictions" convolution gives one cell's B*5+C outputs.
    model = models.build("yolo_v1_tiny", input_shape=(112, 112, 3), num_classes=3,
                         backbone="tiny_s16", head="conv", width=0.25,
                         fc_units=16, dropout=0)
    assert model.output.shape == (None, 7, 7, 13)
    assert model.get_layer("predictions").kernel.shape == (1, 1, 16, 13)
    # The same content two cells (32 px) further right gives the same outputs two cells
    # further right: the cells share the head (the dense head would give other numbers).
    # At initialization biases and BN offsets are 0, so the zero background acts like the
    # zero padding; interior cells keep the pattern's influence off the borders.
    pattern = np.random.default_rng(3).uniform(0, 255, (16, 16, 3)).astype("float32")
    images = np.zeros((2, 112, 112, 3), "float32")
    images[0, 32:48, 32:48] = pattern
    images[1, 32:48, 64:80] = pattern
    out = keras.ops.convert_to_numpy(model(images))
    np.testing.assert_allclose(out[0, 2, 2], out[1, 2, 4], rtol=1e-4, atol=1e-4)
    assert np.abs(out[0, 2, 2]).max() > 1e-3
    # The decoder and loss read S, B and C back from the model as for the dense head
    # (training itself is the dense-head test's run_model_test; jax compiles it slowly).
    loss = detection.make_loss(model)
    assert (loss.num_classes, loss.num_boxes, loss.image_size) == (3, 2, (112, 112))
    value = loss(synthetic_targets(2, 112, 3), out)
    assert np.isfinite(keras.ops.convert_to_numpy(value)).all()


def test_yolo_v1_conv_head_needs_a_grid_sized_map():
    with pytest.raises(ValueError, match="7x7 backbone map"):
        models.build("yolo_v1_tiny", input_shape=(128, 128, 3), num_classes=3, head="conv",
                     width=0.25, fc_units=16)
    with pytest.raises(ValueError, match="head must be one of"):
        models.build("yolo_v1_tiny", num_classes=3, head="local", width=0.25, fc_units=16)
