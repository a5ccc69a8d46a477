"""One way to run any of our detectors: `Detector(model).predict(images)` -> the contract.

The five families are trained in two shapes. YOLO v1 and SSD training models output raw
heads, so the detector appends decode + NMS (`make_inference_model`). Fast and Faster R-CNN
and R-CNN are subclassed models whose `call(training=False)` already returns the contract;
Fast R-CNN and R-CNN also take external proposals, which this adapter computes by selective
search, as in their papers (bare images would get the in-graph sliding windows instead).

Post-processing settings (`score_threshold`, `iou_threshold`, `max_detections`) are
arguments of `Detector` / `inference_model`, which build a separate inference model when
they differ from the model's (its metadata's `decoder`); the model passed in never changes.

Example:
    >>> detector = Detector(keras.saving.load_model("best.keras"), score_threshold=0.3)
    >>> out = detector.predict(images)  # uint8/float (batch, H, W, 3) at the model's size
    >>> out["boxes"].shape  # (batch, max_detections, 4) xyxy pixels
"""

import warnings

import keras
import numpy as np

from kerascv_suite.models.detection.detection_output import DetectionDecoder
from kerascv_suite.models.detection.fast_rcnn import FastRCNN
from kerascv_suite.models.detection.rcnn import RCNN
from kerascv_suite.models.detection.selective_search import selective_search_batch
from kerascv_suite.models.detection.single_shot import detector_kind, make_inference_model
from kerascv_suite.models.detection.two_stage import TwoStageDetector
from kerascv_suite.models.metadata import (DECODER_SETTINGS, HasMetadata, describe,
                                           stored_metadata, with_metadata)

CONTRACT_KEYS = ("boxes", "scores", "classes", "num_detections")
_REGION_DETECTORS = (TwoStageDetector, RCNN)


@keras.saving.register_keras_serializable(package="kerascv_suite")
class DetectorInferenceModel(HasMetadata, keras.Model):
    """An R-CNN-family detector run with other post-processing settings.

    It holds the detector as a sub-model (same layers and weights, nothing copied) and
    calls it with its settings as call arguments, so the detector itself keeps its own.
    Saved as `.keras` it reloads with the detector inside.

    Args:
        detector: a `FasterRCNN`, `FastRCNN` or `RCNN`.
        score_threshold, iou_threshold, max_detections: post-processing; None keeps the
            detector's.
        metadata: extra metadata fields (the detector's are carried over).

    Input: as the detector's (images, or `{"images", "proposals"}`). Output: the contract.
    """

    def __init__(self, detector, score_threshold=None, iou_threshold=None,
                 max_detections=None, metadata=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(detector, dict):
            detector = keras.saving.deserialize_keras_object(detector)
        if not isinstance(detector, _REGION_DETECTORS):
            raise ValueError("DetectorInferenceModel wraps a Faster R-CNN, Fast R-CNN or "
                             f"R-CNN. Received: detector={type(detector).__name__}")
        self.detector = detector
        self.settings = detector.decoder_settings(score_threshold, iou_threshold,
                                                  max_detections)
        with_metadata(self, **{**stored_metadata(detector), **dict(metadata or {})})
        self.built = True

    def call(self, inputs, training=False):
        return self.detector(inputs, training=False, **self.settings)

    def metadata_facts(self):
        facts = describe(self.detector)
        facts = {k: facts[k] for k in ("task", "input_shape", "preprocessing", "decoder")}
        facts["decoder"] = {**facts["decoder"], **self.settings}
        return facts

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable,
                "detector": keras.saving.serialize_keras_object(self.detector),
                **self.settings, "metadata": stored_metadata(self)}


def is_detector(model) -> bool:
    """Whether `model` is one of our detectors (training or inference form)."""
    if isinstance(model, (*_REGION_DETECTORS, DetectorInferenceModel)):
        return True
    if describe(model)["decoder"] is not None:
        return True
    if _returns_contract(model):
        return True
    try:
        detector_kind(model)
        return True
    except (ValueError, AttributeError, IndexError, TypeError):
        return False


def detector_num_classes(model) -> int:
    """Object classes (no background) a detector predicts."""
    decoder = describe(model)["decoder"] or {}
    if "num_classes" in decoder:
        return int(decoder["num_classes"])
    return int(detector_kind(model)[1]["num_classes"])


def _returns_contract(model):
    try:
        output = model.output
    except (AttributeError, ValueError):
        return False
    return isinstance(output, dict) and set(CONTRACT_KEYS) <= set(output)


def inference_model(model, score_threshold=None, iou_threshold=None, max_detections=None):
    """The model of the inference contract for a detector of any family, with these
    post-processing settings (None keeps the model's, see `describe(model)["decoder"]`).

    Returns `model` itself when it already returns the contract with these settings;
    otherwise a separate model over the same weights: the decoder appended to a YOLO v1 /
    SSD training model (`make_inference_model`), a `DetectorInferenceModel` around an
    R-CNN-family detector, or a functional detector's graph with its decoder rebuilt.
    `model` itself is never changed. The result carries the metadata, decoder settings
    included.

    Raises:
        ValueError: `model` is not one of our detectors.
    """
    given = {"score_threshold": score_threshold, "iou_threshold": iou_threshold,
             "max_detections": max_detections}
    given = {k: v for k, v in given.items() if v is not None}
    if isinstance(model, DetectorInferenceModel):
        given = {**model.settings, **given}
        model = model.detector
    if isinstance(model, _REGION_DETECTORS):
        current = model.decoder_settings()
        if all(current[k] == type(current[k])(v) for k, v in given.items()):
            return model
        return DetectorInferenceModel(model, **given, name=f"{model.name}_detector")
    if not _returns_contract(model):
        return make_inference_model(model, **given)
    decoder = describe(model)["decoder"] or {}
    if all(decoder.get(k) == v for k, v in given.items()):
        return model
    last = model.layers[-1]
    if not isinstance(last, DetectionDecoder):
        warnings.warn(f"{model.name!r} returns detections from a graph whose decoder is not "
                      f"one of ours; its post-processing stays as it is (ignoring {given}).",
                      stacklevel=2)
        return model
    # Same graph up to the decoder, then a decoder with the new settings.
    rebuilt = type(last).from_config({**last.get_config(), **given})
    detector = keras.Model(model.input, rebuilt(last.input), name=model.name)
    fields = {k: v for k, v in describe(model).items()
              if k != "decoder" and v not in (None, {})}
    settings = rebuilt.get_config()
    return with_metadata(detector, **fields, decoder={
        **decoder, **{k: settings[k] for k in (*DECODER_SETTINGS, "pre_nms_top_k")}})


class Detector:
    """Runs a trained detector on image batches and returns numpy contract dicts.

    Args:
        model: a detector built by our builders (training form of YOLO v1 / SSD, or a
            Fast / Faster R-CNN / R-CNN model), or a model already returning the contract.
            It is not changed.
        score_threshold, iou_threshold, max_detections: post-processing; None keeps the
            model's (its metadata's `decoder`, the paper's settings by default).
        max_proposals: selective-search proposals per image for Fast R-CNN and R-CNN.

    Attributes:
        model: the Keras inference model `predict` calls (images, or images + proposals);
            see `inference_model`.
        needs_proposals: True for Fast R-CNN and R-CNN.
        input_size: `(height, width)` the model takes.
        num_classes: object classes.
        decoder: the post-processing settings in use (`describe(self.model)["decoder"]`).
    """

    def __init__(self, model, score_threshold=None, iou_threshold=None, max_detections=None,
                 max_proposals=300):
        base = model.detector if isinstance(model, DetectorInferenceModel) else model
        self.needs_proposals = isinstance(base, (FastRCNN, RCNN))
        self.max_proposals = int(max_proposals)
        self.model = inference_model(model, score_threshold=score_threshold,
                                     iou_threshold=iou_threshold,
                                     max_detections=max_detections)
        description = describe(self.model)
        self.input_size = tuple(description["input_shape"][:2])
        self.decoder = description["decoder"]
        self.num_classes = detector_num_classes(model)

    def inputs_for(self, images, proposals=None):
        """The model's inputs for `(batch, H, W, 3)` images: the images, plus proposals
        where the model takes them (`proposals` `(batch, P, 4)` xyxy input pixels, e.g.
        cached; None: selective search on the images)."""
        images = np.asarray(images)
        if not self.needs_proposals:
            return images.astype("float32")
        if proposals is None:
            proposals = selective_search_batch(images.astype("uint8"),
                                               max_proposals=self.max_proposals)
        return {"images": images.astype("float32"),
                "proposals": np.asarray(proposals, "float32")}

    def predict(self, images, proposals=None):
        """`{"boxes", "scores", "classes", "num_detections"}` numpy arrays for a batch
        (`proposals`: see `inputs_for`)."""
        out = self.model.predict_on_batch(self.inputs_for(images, proposals))
        return {key: np.asarray(out[key]) for key in CONTRACT_KEYS}
