import keras
import numpy as np
import pytest

from kerascv_suite.losses import YoloV1Loss, pack_detection_targets, yolo_v1_targets


def _hand_case():
    """S=2, B=2, C=2 on a 100x100 image; one box (0, 0, 36, 64) of class 1.

    Its centre (18, 32) is 0.18, 0.32 of the image: cell (row 0, col 0), offset in the cell
    (0.36, 0.64), w = 0.36 (sqrt 0.6), h = 0.64 (sqrt 0.8).
    """
    y_pred = np.zeros((2, 2, 2, 12), "float32")
    # Cell 0: predictor 0 is the exact box with confidence 0.5; predictor 1 a small box
    # (0.04 x 0.04 at (0.25, 0.25), inside the object: IoU 0.0016 / 0.2304) with 0.3;
    # class outputs (0.2, 0.7).
    y_pred[0, 0, 0, :12] = [0.36, 0.64, 0.6, 0.8, 0.5, 0.5, 0.5, 0.2, 0.2, 0.3, 0.2, 0.7]
    # Cell 3 holds no object: confidences 0.4, 0.2; its class outputs must not count.
    y_pred[0, 1, 1, [4, 9]] = [0.4, 0.2]
    y_pred[0, 1, 1, 10:] = 0.9
    # Image 2: as image 1 with predictor 0's x off by 0.1: centre (0.23, 0.32), its box
    # overlaps the object 0.31 x 0.64 = 0.1984, union 2 * 0.2304 - 0.1984 = 0.2624.
    y_pred[1] = y_pred[0]
    y_pred[1, 0, 0, 0] = 0.46
    boxes = np.array([[[0, 0, 36, 64], [0, 0, 0, 0]]] * 2, "float32")
    classes = np.array([[1, -1]] * 2, "int32")
    return y_pred, pack_detection_targets(boxes, classes)


@pytest.mark.backend
def test_yolo_v1_loss_hand_computed():
    y_pred, y_true = _hand_case()
    loss = YoloV1Loss(num_classes=2, num_boxes=2, image_size=(100, 100))
    per_image = keras.ops.convert_to_numpy(loss.call(keras.ops.convert_to_tensor(y_true),
                                                     keras.ops.convert_to_tensor(y_pred)))
    # Paper eq. (3), λcoord = 5, λnoobj = 0.5. Image 1: coordinates exact (0);
    # responsible confidence (0.5 - IoU 1)² = 0.25; the other predictor of the cell
    # 0.5 * 0.3² = 0.045; classes (0.2 - 0)² + (0.7 - 1)² = 0.13; empty cell 3
    # 0.5 * (0.4² + 0.2²) = 0.1 -> 0.525.
    # Image 2: coordinates 5 * 0.1² = 0.05; confidence (0.5 - 0.1984 / 0.2624)² = 0.0655864;
    # the rest as image 1 (0.045 + 0.13 + 0.1) -> 0.3905864.
    np.testing.assert_allclose(per_image, [0.525, 0.3905864], rtol=1e-5)
    # Keras' default reduction: the mean over images.
    total = keras.ops.convert_to_numpy(loss(y_true, y_pred))
    np.testing.assert_allclose(total, (0.525 + 0.3905864) / 2, rtol=1e-5)


@pytest.mark.backend
def test_yolo_v1_loss_without_rescore_targets_one():
    y_pred, y_true = _hand_case()
    loss = YoloV1Loss(num_classes=2, num_boxes=2, image_size=(100, 100), rescore=False)
    per_image = keras.ops.convert_to_numpy(loss.call(keras.ops.convert_to_tensor(y_true),
                                                     keras.ops.convert_to_tensor(y_pred)))
    # Image 2's confidence term becomes (0.5 - 1)² = 0.25: 0.05 + 0.25 + 0.275.
    np.testing.assert_allclose(per_image, [0.525, 0.575], rtol=1e-5)


@pytest.mark.backend
def test_yolo_v1_targets_one_object_per_cell():
    # Two centres in cell (row 1, col 0) of a 2x2 grid: the first box is the cell's object.
    boxes = np.array([[[0, 60, 20, 80], [10, 55, 30, 95], [60, 10, 80, 30]]], "float32")
    classes = np.array([[0, 1, 2]], "int32")
    t = yolo_v1_targets(pack_detection_targets(boxes, classes), 2, 3, (100, 100))
    t = {k: keras.ops.convert_to_numpy(v) for k, v in t.items()}
    np.testing.assert_array_equal(t["has_object"], [[0, 1, 1, 0]])
    np.testing.assert_allclose(t["box"][0, 2], [0.1, 0.7, 0.2, 0.2], atol=1e-6)
    np.testing.assert_allclose(t["offset"][0, 2], [0.2, 0.4], atol=1e-6)
    np.testing.assert_array_equal(t["class_one_hot"][0, 2], [1, 0, 0])
    np.testing.assert_array_equal(t["class_one_hot"][0, 1], [0, 0, 1])


def test_yolo_v1_loss_config_round_trip():
    loss = YoloV1Loss(num_classes=3, num_boxes=2, image_size=(64, 64), lambda_noobj=0.25)
    clone = YoloV1Loss.from_config(loss.get_config())
    assert clone.get_config() == loss.get_config()
