"""In-graph decoding of detector heads into the inference contract (decode + NMS).

Every detector's inference model ends in a `DetectionDecoder` subclass, so an exported
model maps images to `{"boxes", "scores", "classes", "num_detections"}`:
`boxes (batch, max_detections, 4)` xyxy in input pixels, `scores (batch, max_detections)`,
`classes (batch, max_detections)` int32 dataset ids (0..C-1, -1 on padding rows) and
`num_detections (batch,)` int32.
"""

import keras
from keras import ops

from kerascv_suite.bounding_box import BoxCoder, batched_nms, ssd_default_boxes
from kerascv_suite.bounding_box.nms import top_k_pairs


@keras.saving.register_keras_serializable(package="kerascv_suite")
class DetectionDecoder(keras.layers.Layer):
    """Per-class NMS of scored boxes, padded to `max_detections`.

    Each (box, class) pair is a candidate, as in SSD's and YOLO's reference detection
    output: the `pre_nms_top_k` best-scoring candidates above `score_threshold` go through
    class-aware greedy NMS (`bounding_box.batched_nms`) and the best `max_detections` stay
    (so at most `pre_nms_top_k` when that is fewer; the rows are padded all the same).

    Args:
        score_threshold: minimum class score (exclusive).
        iou_threshold: NMS IoU.
        max_detections: detections per image (padding rows after `num_detections`).
        pre_nms_top_k: candidates entering NMS per image.

    Input: `[boxes (batch, num_boxes, 4) xyxy pixels, scores (batch, num_boxes, C)]`.
    Output: the inference-contract dict above.
    """

    def __init__(self, score_threshold=0.01, iou_threshold=0.45, max_detections=100,
                 pre_nms_top_k=400, **kwargs):
        super().__init__(**kwargs)
        self.score_threshold = float(score_threshold)
        self.iou_threshold = float(iou_threshold)
        self.max_detections = int(max_detections)
        self.pre_nms_top_k = int(pre_nms_top_k)

    def detect(self, scores, boxes_at):
        """Top (box, class) pairs of `scores (batch, num_boxes, C)`, then NMS.

        `boxes_at(index)` returns the xyxy boxes `(batch, k, 4)` of box indices
        `(batch, k)`: only the candidates' boxes are decoded (on SSD300, 400 of 8,732).
        Scores at or below the threshold rank last, so the pairs picked are the ones
        `batched_nms` would have ranked first among all pairs.
        """
        top_scores, box, label = top_k_pairs(scores, self.pre_nms_top_k)
        out = batched_nms(boxes_at(box), top_scores, label, iou_threshold=self.iou_threshold,
                          score_threshold=self.score_threshold,
                          max_detections=self.max_detections)
        out.pop("indices")
        return out

    def call(self, inputs):
        boxes, scores = inputs
        boxes = ops.cast(boxes, "float32")
        return self.detect(ops.cast(scores, "float32"),
                           lambda index: ops.take_along_axis(boxes, index[..., None], axis=1))

    def compute_output_spec(self, inputs):
        batch = keras.tree.flatten(inputs)[0].shape[0]
        m = self.max_detections
        return {"boxes": keras.KerasTensor((batch, m, 4), "float32"),
                "scores": keras.KerasTensor((batch, m), "float32"),
                "classes": keras.KerasTensor((batch, m), "int32"),
                "num_detections": keras.KerasTensor((batch,), "int32")}

    def get_config(self):
        return {**super().get_config(), "score_threshold": self.score_threshold,
                "iou_threshold": self.iou_threshold, "max_detections": self.max_detections,
                "pre_nms_top_k": self.pre_nms_top_k}


@keras.saving.register_keras_serializable(package="kerascv_suite")
class YoloV1Decoder(DetectionDecoder):
    """Decodes YOLO v1's `(batch, S, S, B * 5 + C)` grid into detections.

    Redmon et al. 2016, sec. 2: box j of cell (row, col) is centred at
    `((col + x) / S, (row + y) / S)` of the image, `w² x h²` in size (the network predicts
    square roots, see `YoloV1Loss`); its class-specific score is
    `Pr(class | object) * confidence`, both clipped to [0, 1] because the outputs are linear.

    Args:
        num_boxes: B.
        image_size: `(height, width)` of the model input.
        **kwargs: `DetectionDecoder` thresholds (darknet's YOLO v1 default threshold: 0.2).
    """

    def __init__(self, num_boxes=2, image_size=(448, 448), score_threshold=0.2,
                 iou_threshold=0.5, max_detections=100, pre_nms_top_k=400, **kwargs):
        super().__init__(score_threshold=score_threshold, iou_threshold=iou_threshold,
                         max_detections=max_detections, pre_nms_top_k=pre_nms_top_k, **kwargs)
        self.num_boxes = int(num_boxes)
        self.image_size = tuple(int(v) for v in image_size)

    def call(self, inputs):
        s, nb = inputs.shape[1], self.num_boxes
        x = ops.reshape(ops.cast(inputs, "float32"), (-1, s * s, inputs.shape[-1]))
        pred = ops.reshape(x[..., : nb * 5], (-1, s * s, nb, 5))
        class_prob = ops.clip(x[..., nb * 5:], 0.0, 1.0)
        grid = ops.arange(s * s, dtype="float32")
        cell_xy = ops.stack([grid % s, ops.floor(grid / s)], axis=-1)[None, :, None, :]
        centre = (cell_xy + pred[..., :2]) / s
        half = ops.square(pred[..., 2:4]) / 2
        height, width = self.image_size
        scale = ops.convert_to_tensor([width, height, width, height], "float32")
        boxes = ops.clip(ops.concatenate([centre - half, centre + half], -1), 0.0, 1.0) * scale
        scores = ops.clip(pred[..., 4:5], 0.0, 1.0) * class_prob[:, :, None, :]
        boxes = ops.reshape(boxes, (-1, s * s * nb, 4))
        return self.detect(ops.reshape(scores, (-1, s * s * nb, class_prob.shape[-1])),
                           lambda index: ops.take_along_axis(boxes, index[..., None], axis=1))

    def get_config(self):
        return {**super().get_config(), "num_boxes": self.num_boxes,
                "image_size": self.image_size}


@keras.saving.register_keras_serializable(package="kerascv_suite")
class SSDDecoder(DetectionDecoder):
    """Decodes SSD's `(batch, num_default_boxes, 4 + 1 + C)` heads into detections.

    Liu et al. 2016, sec. 3 ("Inference"): offsets decoded against the default boxes with
    the variances, softmax class scores with background (class 0) dropped, confidence
    threshold 0.01, per-class NMS at IoU 0.45, and the top 200 detections per image.

    Args:
        default_boxes: keyword arguments of `ssd_default_boxes`.
        variances: SSD's box-coder variances.
        **kwargs: `DetectionDecoder` thresholds.
    """

    def __init__(self, default_boxes, variances=(0.1, 0.1, 0.2, 0.2), score_threshold=0.01,
                 iou_threshold=0.45, max_detections=200, pre_nms_top_k=400, **kwargs):
        super().__init__(score_threshold=score_threshold, iou_threshold=iou_threshold,
                         max_detections=max_detections, pre_nms_top_k=pre_nms_top_k, **kwargs)
        self.default_boxes = {k: (list(v) if isinstance(v, (list, tuple)) else v)
                              for k, v in dict(default_boxes).items()}
        self.variances = tuple(float(v) for v in variances)

    def call(self, inputs):
        x = ops.cast(inputs, "float32")
        anchors = ssd_default_boxes(**self.default_boxes)
        coder = BoxCoder.from_variances(self.variances)

        def boxes_at(index):
            # Decoding is per box, so decoding the candidates alone gives their same boxes.
            deltas = ops.take_along_axis(x[..., :4], index[..., None], axis=1)
            boxes = coder.decode(ops.take(anchors, index, axis=0), deltas)
            return ops.clip(boxes, 0.0, float(self.default_boxes["image_size"]))

        return self.detect(ops.softmax(x[..., 4:], axis=-1)[..., 1:], boxes_at)

    def get_config(self):
        return {**super().get_config(), "default_boxes": self.default_boxes,
                "variances": self.variances}


@keras.saving.register_keras_serializable(package="kerascv_suite")
class YoloV1Output(keras.layers.Layer):
    """Reshapes YOLO v1's last fully connected layer to the `(S, S, B * 5 + C)` grid.

    The counterpart of darknet's `[detection]` layer: it carries the grid size, boxes per
    cell and class count, so the inference decoder and the loss can be built from a trained
    model alone (see `make_inference_model`).

    Input: `(batch, S * S * (B * 5 + C))`. Output: `(batch, S, S, B * 5 + C)`.
    """

    def __init__(self, grid_size=7, num_boxes=2, num_classes=20, **kwargs):
        super().__init__(**kwargs)
        self.grid_size = int(grid_size)
        self.num_boxes = int(num_boxes)
        self.num_classes = int(num_classes)

    @property
    def depth(self):
        return self.num_boxes * 5 + self.num_classes

    def call(self, inputs):
        return ops.reshape(inputs, (-1, self.grid_size, self.grid_size, self.depth))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.grid_size, self.grid_size, self.depth)

    def get_config(self):
        return {**super().get_config(), "grid_size": self.grid_size,
                "num_boxes": self.num_boxes, "num_classes": self.num_classes}
