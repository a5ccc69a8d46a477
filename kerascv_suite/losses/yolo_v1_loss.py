"""The YOLO v1 sum-squared detection loss (Redmon et al. 2016, eq. 3)."""

import keras
from keras import ops

from kerascv_suite.bounding_box import convert_format, elementwise_iou
from kerascv_suite.losses.detection_targets import unpack_detection_targets


def yolo_v1_targets(y_true, grid_size, num_classes, image_size):
    """Assigns ground truth to grid cells, the cell that holds each box centre.

    A cell predicts one object; when several centres fall in one cell, the first box (in
    the batch's order) is its object.

    Args:
        y_true: `(batch, num_boxes, 5)` packed xyxy pixels + class (see
            `pack_detection_targets`).
        grid_size: S.
        num_classes: C.
        image_size: `(height, width)` of the input images in pixels.

    Returns:
        dict of `has_object (batch, S*S)` float, `box (batch, S*S, 4)` (cx, cy, w, h) as
        fractions of the image, `offset (batch, S*S, 2)` centre within its cell in [0, 1),
        `class_one_hot (batch, S*S, C)`.
    """
    height, width = float(image_size[0]), float(image_size[1])
    s = grid_size
    boxes, classes, valid = unpack_detection_targets(ops.cast(y_true, "float32"))
    boxes = convert_format(boxes, source="xyxy", target="rel_center_xywh", height=height,
                           width=width)
    centre, size = boxes[..., :2], ops.maximum(boxes[..., 2:], 0.0)
    cell_xy = ops.clip(ops.floor(centre * s), 0, s - 1)  # (b, n, 2) column, row
    cell = ops.cast(cell_xy[..., 1] * s + cell_xy[..., 0], "int32")
    in_cell = ops.one_hot(cell, s * s) * ops.cast(valid, "float32")[..., None]  # (b, n, S*S)
    has_object = ops.max(in_cell, axis=1)
    first = ops.argmax(in_cell, axis=1)[..., None]  # (b, S*S, 1): lowest index wins
    gather = lambda t: ops.take_along_axis(t, first, axis=1)
    box = gather(ops.concatenate([centre, size], axis=-1))
    offset = gather(centre * s - cell_xy)
    class_one_hot = ops.one_hot(ops.maximum(ops.squeeze(gather(classes[..., None]), -1), 0),
                                num_classes)
    mask = has_object[..., None]
    return {"has_object": has_object, "box": box * mask, "offset": offset * mask,
            "class_one_hot": class_one_hot * mask}


@keras.saving.register_keras_serializable(package="kerascv_suite")
class YoloV1Loss(keras.losses.Loss):
    """YOLO v1's multi-part sum-squared error.

    Redmon, Divvala, Girshick, Farhadi, "You Only Look Once: Unified, Real-Time Object
    Detection", CVPR 2016, eq. (3), with λcoord = 5 and λnoobj = 0.5:

        λcoord Σ_i Σ_j 1obj_ij [(x - x̂)² + (y - ŷ)² + (√w - √ŵ)² + (√h - √ĥ)²]
        + Σ_i Σ_j 1obj_ij (C - Ĉ)² + λnoobj Σ_i Σ_j 1noobj_ij (C - Ĉ)²
        + Σ_i 1obj_i Σ_c (p(c) - p̂(c))²

    The predictor j "responsible" in cell i is the one whose predicted box has the highest
    IoU with the cell's object; the confidence target is that IoU (sec. 2: confidence is
    Pr(Object) * IoU, darknet's `rescore`), and every other predictor (1noobj_ij) is pushed
    to 0. As in darknet, the network's w, h outputs are the square roots themselves
    (a box is `output²` wide), so the square-root term is `(output - √ŵ)²`.

    Predictions: `(batch, S, S, B * 5 + C)`, each cell `[x, y, √w, √h, C] * B` then the C
    class probabilities; x, y are the centre's offset in its cell, w, h fractions of the
    image. Targets: `(batch, num_boxes, 5)` packed xyxy pixels + class id (-1 padding), see
    `pack_detection_targets`. Returns one loss per image (a sum over its cells).

    Args:
        num_classes: C.
        num_boxes: B, predictors per cell.
        image_size: `(height, width)` of the model input in pixels.
        lambda_coord, lambda_noobj: the paper's weights.
        rescore: confidence target is the IoU (True) or 1 (False).
    """

    def __init__(self, num_classes=20, num_boxes=2, image_size=(448, 448), lambda_coord=5.0,
                 lambda_noobj=0.5, rescore=True, name="yolo_v1_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_classes = int(num_classes)
        self.num_boxes = int(num_boxes)
        self.image_size = tuple(int(v) for v in image_size)
        self.lambda_coord = float(lambda_coord)
        self.lambda_noobj = float(lambda_noobj)
        self.rescore = bool(rescore)

    def call(self, y_true, y_pred):
        s, nb, nc = y_pred.shape[1], self.num_boxes, self.num_classes
        if y_pred.shape[-1] != nb * 5 + nc:
            raise ValueError(f"Expected predictions (batch, S, S, {nb * 5 + nc}) for B={nb}, "
                             f"C={nc}. Received: y_pred.shape={y_pred.shape}")
        t = yolo_v1_targets(y_true, s, nc, self.image_size)
        y_pred = ops.reshape(y_pred, (-1, s * s, nb * 5 + nc))
        pred = ops.reshape(y_pred[..., : nb * 5], (-1, s * s, nb, 5))
        pred_class = y_pred[..., nb * 5:]

        # The predicted boxes, in image fractions, to pick each cell's responsible predictor.
        grid = ops.arange(s * s, dtype="float32")
        cell_xy = ops.stack([grid % s, ops.floor(grid / s)], axis=-1)[None, :, None, :]
        pred_box = ops.concatenate([(cell_xy + pred[..., :2]) / s, ops.square(pred[..., 2:4])],
                                   axis=-1)
        iou = ops.stop_gradient(elementwise_iou(pred_box, t["box"][:, :, None, :],
                                                "center_xywh"))  # (b, S*S, B)
        responsible = ops.one_hot(ops.argmax(iou, axis=-1), nb) * t["has_object"][..., None]

        target_xy = t["offset"][:, :, None, :]
        target_sqrt_wh = ops.sqrt(t["box"][:, :, None, 2:])
        coord = (ops.sum(ops.square(pred[..., :2] - target_xy), -1)
                 + ops.sum(ops.square(pred[..., 2:4] - target_sqrt_wh), -1))
        confidence = pred[..., 4]
        target_conf = iou if self.rescore else ops.ones_like(iou)
        obj = ops.square(confidence - target_conf)
        noobj = ops.square(confidence)
        per_predictor = (responsible * (self.lambda_coord * coord + obj)
                         + self.lambda_noobj * (1.0 - responsible) * noobj)
        per_cell = t["has_object"] * ops.sum(ops.square(pred_class - t["class_one_hot"]), -1)
        return ops.sum(per_predictor, axis=(1, 2)) + ops.sum(per_cell, axis=1)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes,
                "num_boxes": self.num_boxes, "image_size": self.image_size,
                "lambda_coord": self.lambda_coord, "lambda_noobj": self.lambda_noobj,
                "rescore": self.rescore}
