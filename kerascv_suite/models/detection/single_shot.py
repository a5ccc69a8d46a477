"""From a single-shot detector's training model (YOLO v1, SSD) to its loss and its detector.

The registered builders return TRAINING models, whose single output holds the raw heads
(`(batch, S, S, B * 5 + C)` for YOLO v1, `(batch, num_default_boxes, 4 + C + 1)` for SSD).
What decoding needs (the family, class count, SSD's default boxes, YOLO's boxes per cell)
and the decoder's default settings are in the model's metadata (`models.describe(model)
["decoder"]`, written by the builders), so it works as well on a model loaded from a
`.keras` file or MLflow:

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
from kerascv_suite.models.metadata import (BOX_FORMAT, DECODER_SETTINGS, FIELDS, describe,
                                           with_metadata)

_LOC_SUFFIX = "_mbox_loc"
_SETTINGS = (*DECODER_SETTINGS, "pre_nms_top_k")


def detector_kind(model):
    """`("yolo_v1", info)` or `("ssd", info)` for a training model built by our builders.

    `info` holds what decoding needs: for YOLO v1 `num_boxes`, `num_classes`, `image_size`;
    for SSD `default_boxes` (the `ssd_default_boxes` arguments) and `num_classes`. They are
    read from the model's metadata; a `.keras` file saved before models carried metadata is
    read from its layers (`legacy_detector_kind`).
    """
    decoder = describe(model)["decoder"] or {}
    family = decoder.get("family")
    if family == "yolo_v1":
        return "yolo_v1", {"num_boxes": int(decoder["num_boxes"]),
                           "num_classes": int(decoder["num_classes"]),
                           "image_size": tuple(int(d) for d in decoder["image_size"])}
    if family == "ssd":
        return "ssd", {"default_boxes": _tuples(decoder["default_boxes"]),
                       "num_classes": int(decoder["num_classes"])}
    if family is not None:
        raise ValueError(f"Expected a YOLO v1 or SSD training model; this is a {family} "
                         f"detector. Received: model={model.name!r}")
    return legacy_detector_kind(model)


def legacy_detector_kind(model):
    """`detector_kind` of a YOLO v1 / SSD model without metadata, read from its layers:
    the `YoloV1Output` layer's config, or the SSD heads' map sizes (SSD512 predicts from 7
    maps; SSD300 from 6, or fewer with `extra_blocks`)."""
    height, width = model.inputs[0].shape[1], model.inputs[0].shape[2]
    for layer in model.layers:
        if isinstance(layer, YoloV1Output):
            return "yolo_v1", {"num_boxes": layer.num_boxes, "num_classes": layer.num_classes,
                               "image_size": (height, width)}
    heads = [layer for layer in model.layers if layer.name.endswith(_LOC_SUFFIX)]
    if heads:
        config = "ssd300" if len(heads) <= 6 else "ssd512"
        sizes = [layer.output.shape[1] for layer in heads]
        num_classes = model.outputs[0].shape[-1] - 5
        return "ssd", {"default_boxes": ssd_default_box_config(config, height, sizes),
                       "num_classes": num_classes}
    raise ValueError("Expected a YOLO v1 or SSD training model (a `YoloV1Output` layer or "
                     f"`*{_LOC_SUFFIX}` heads). Received: model={model.name!r}")


def _tuples(value):
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return tuple(_tuples(v) for v in value)
    return value


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
    "num_detections": (batch,) int32}`; `model.export(...)` of it gives a detector. It
    carries the training model's metadata, with `decoder` set to the settings it was built
    with. `model` itself is not changed.

    Args:
        model: a YOLO v1 or SSD training model.
        score_threshold, iou_threshold, max_detections, pre_nms_top_k: decoder settings;
            None keeps the model's metadata's (the paper's: YOLO v1 0.2 / 0.5 / 100, SSD
            0.01 / 0.45 / 200).
        name: model name; `"<model name>_detector"` when None.
    """
    if isinstance(model.output, dict):
        raise ValueError("make_inference_model takes a training model; this model already "
                         "returns detections (pass its thresholds to Detector instead). "
                         f"Received: model={model.name!r}")
    kind, info = detector_kind(model)
    description = describe(model)
    stored = description["decoder"] or {}
    given = {"score_threshold": score_threshold, "iou_threshold": iou_threshold,
             "max_detections": max_detections, "pre_nms_top_k": pre_nms_top_k}
    settings = {k: stored[k] for k in _SETTINGS if k in stored}
    settings.update({k: v for k, v in given.items() if v is not None})
    if kind == "yolo_v1":
        decoder = YoloV1Decoder(info["num_boxes"], info["image_size"], name="detections",
                                **settings)
        extra = {"num_boxes": info["num_boxes"], "image_size": list(info["image_size"])}
    else:
        decoder = SSDDecoder(info["default_boxes"], name="detections", **settings)
        extra = {"default_boxes": info["default_boxes"]}
    detector = keras.Model(model.input, decoder(model.outputs[0]),
                           name=name or f"{model.name}_detector")
    config = decoder.get_config()
    fields = {k: v for k, v in description.items()
              if k in FIELDS and k != "decoder" and v not in (None, {})}
    return with_metadata(detector, **{**fields, "task": "detection"}, decoder={
        **stored, "family": kind, "box_format": BOX_FORMAT,
        "num_classes": int(info["num_classes"]), **extra,
        **{k: config[k] for k in _SETTINGS}})
