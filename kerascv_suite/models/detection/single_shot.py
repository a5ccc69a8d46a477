"""From a single-shot detector's training model (YOLO v1, SSD) to its loss and its detector.

The registered builders return TRAINING models, whose single output holds the raw heads
(`(batch, S, S, B * 5 + C)` for YOLO v1, `(batch, num_default_boxes, 4 + C + 1)` for SSD).
Everything else is read back from the model itself, so it works as well on a model loaded
from a `.keras` file or MLflow:

    >>> model = models.build("ssd300", num_classes=3)
    >>> model.compile("adam", loss=detection.make_loss(model))
    >>> model.fit(images, losses.pack_detection_targets(boxes, classes))
    >>> detector = detection.make_inference_model(model, score_threshold=0.3)
    >>> detector(images)  # {"boxes", "scores", "classes", "num_detections"}
"""

import keras

from kerascv_suite.losses import MultiboxLoss, YoloV1Loss
from kerascv_suite.models.detection.detection_output import (SSDDecoder, YoloV1Decoder,
                                                             YoloV1Output)
from kerascv_suite.models.detection.ssd import ssd_default_box_config

_LOC_SUFFIX = "_mbox_loc"


def detector_kind(model):
    """`("yolo_v1", info)` or `("ssd", info)` for a training model built by our builders.

    `info` holds what decoding needs: for YOLO v1 `num_boxes`, `num_classes`, `image_size`;
    for SSD `default_boxes` (the `ssd_default_boxes` arguments) and `num_classes`.
    """
    height, width = model.inputs[0].shape[1], model.inputs[0].shape[2]
    for layer in model.layers:
        if isinstance(layer, YoloV1Output):
            return "yolo_v1", {"num_boxes": layer.num_boxes, "num_classes": layer.num_classes,
                               "image_size": (height, width)}
    heads = [layer for layer in model.layers if layer.name.endswith(_LOC_SUFFIX)]
    if heads:
        # SSD512 predicts from 7 maps; SSD300 from 6, or fewer with `extra_blocks`.
        config = "ssd300" if len(heads) <= 6 else "ssd512"
        sizes = [layer.output.shape[1] for layer in heads]
        num_classes = model.outputs[0].shape[-1] - 5
        return "ssd", {"default_boxes": ssd_default_box_config(config, height, sizes),
                       "num_classes": num_classes}
    raise ValueError("Expected a YOLO v1 or SSD training model (a `YoloV1Output` layer or "
                     f"`*{_LOC_SUFFIX}` heads). Received: model={model.name!r}")


def make_loss(model, **kwargs):
    """The paper's loss for `model`: a `YoloV1Loss` or a `MultiboxLoss`.

    Args:
        model: a YOLO v1 or SSD training model.
        **kwargs: overrides of the loss arguments (e.g. `lambda_noobj`, `neg_pos_ratio`).
    """
    kind, info = detector_kind(model)
    if kind == "yolo_v1":
        return YoloV1Loss(**{**info, **kwargs})
    return MultiboxLoss(**{**info, **kwargs})


def make_inference_model(model, score_threshold=None, iou_threshold=None,
                         max_detections=None, pre_nms_top_k=None, name=None):
    """Appends decode + NMS to a training model: the detector of the inference contract.

    The result shares the training model's layers (and weights) and returns
    `{"boxes": (batch, max_detections, 4) xyxy input pixels, "scores": (batch,
    max_detections), "classes": (batch, max_detections) int32 in 0..C-1 (-1 padding),
    "num_detections": (batch,) int32}`; `model.export(...)` of it gives a detector.

    Args:
        model: a YOLO v1 or SSD training model.
        score_threshold, iou_threshold, max_detections, pre_nms_top_k: decoder settings;
            None keeps the paper's (YOLO v1: 0.2 / 0.5 / 100, SSD: 0.01 / 0.45 / 200).
        name: model name; `"<model name>_detector"` when None.
    """
    kind, info = detector_kind(model)
    settings = {"score_threshold": score_threshold, "iou_threshold": iou_threshold,
                "max_detections": max_detections, "pre_nms_top_k": pre_nms_top_k}
    settings = {k: v for k, v in settings.items() if v is not None}
    if kind == "yolo_v1":
        decoder = YoloV1Decoder(info["num_boxes"], info["image_size"], name="detections",
                                **settings)
    else:
        decoder = SSDDecoder(info["default_boxes"], name="detections", **settings)
    return keras.Model(model.input, decoder(model.outputs[0]),
                       name=name or f"{model.name}_detector")
