"""One way to run any of our detectors: `Detector(model).predict(images)` -> the contract.

The five families are trained in two shapes. YOLO v1 and SSD training models output raw
heads, so the detector appends decode + NMS (`make_inference_model`). Fast and Faster R-CNN
and R-CNN are subclassed models whose `call(training=False)` already returns the contract;
Fast R-CNN and R-CNN also take external proposals, which this adapter computes by selective
search, as in their papers (bare images would get the in-graph sliding windows instead).

Example:
    >>> detector = Detector(keras.saving.load_model("best.keras"), score_threshold=0.3)
    >>> out = detector.predict(images)  # uint8/float (batch, H, W, 3) at the model's size
    >>> out["boxes"].shape  # (batch, max_detections, 4) xyxy pixels
"""

import numpy as np

from kerascv_suite.models.detection.fast_rcnn import FastRCNN
from kerascv_suite.models.detection.rcnn import RCNN
from kerascv_suite.models.detection.selective_search import selective_search_batch
from kerascv_suite.models.detection.single_shot import make_inference_model
from kerascv_suite.models.detection.two_stage import TwoStageDetector

CONTRACT_KEYS = ("boxes", "scores", "classes", "num_detections")


def is_detector(model) -> bool:
    """Whether `model` is one of our detectors (training or inference form)."""
    if isinstance(model, (TwoStageDetector, RCNN)):
        return True
    if isinstance(model.output, dict) and set(CONTRACT_KEYS) <= set(model.output):
        return True
    try:
        from kerascv_suite.models.detection.single_shot import detector_kind

        detector_kind(model)
        return True
    except (ValueError, AttributeError, IndexError, TypeError):
        return False


def detector_num_classes(model) -> int:
    """Object classes (no background) a detector predicts."""
    if isinstance(model, (TwoStageDetector, RCNN)):
        return int(model.num_classes)
    from kerascv_suite.models.detection.single_shot import detector_kind

    return int(detector_kind(model)[1]["num_classes"])


class Detector:
    """Runs a trained detector on image batches and returns numpy contract dicts.

    Args:
        model: a detector built by our builders (training form of YOLO v1 / SSD, or a
            Fast / Faster R-CNN / R-CNN model), or a model already returning the contract.
        score_threshold, iou_threshold, max_detections: post-processing; None keeps the
            model's (the paper's) settings.
        max_proposals: selective-search proposals per image for Fast R-CNN and R-CNN.

    Attributes:
        model: the Keras model `predict` calls (images, or images + proposals).
        needs_proposals: True for Fast R-CNN and R-CNN.
        input_size: `(height, width)` the model takes.
    """

    def __init__(self, model, score_threshold=None, iou_threshold=None, max_detections=None,
                 max_proposals=300):
        self.needs_proposals = isinstance(model, (FastRCNN, RCNN))
        self.max_proposals = int(max_proposals)
        if isinstance(model, (TwoStageDetector, RCNN)):
            # Python settings read when the graph is traced: set them before the first call.
            for attribute, value in (("score_threshold", score_threshold),
                                     ("nms_threshold", iou_threshold),
                                     ("max_detections", max_detections)):
                if value is not None:
                    setattr(model, attribute, type(getattr(model, attribute))(value))
            model.predict_function = None
            self.model = model
            self.input_size = tuple(model.image_shape[:2])
        elif isinstance(model.output, dict):
            self.model = model
            self.input_size = tuple(model.inputs[0].shape[1:3])
        else:
            self.model = make_inference_model(model, score_threshold=score_threshold,
                                              iou_threshold=iou_threshold,
                                              max_detections=max_detections)
            self.input_size = tuple(model.inputs[0].shape[1:3])
        self.num_classes = detector_num_classes(model)

    def inputs_for(self, images):
        """The model's inputs for `(batch, H, W, 3)` images: the images, plus selective
        search proposals where the model takes them."""
        images = np.asarray(images)
        if not self.needs_proposals:
            return images.astype("float32")
        proposals = selective_search_batch(images.astype("uint8"),
                                           max_proposals=self.max_proposals)
        return {"images": images.astype("float32"), "proposals": proposals}

    def predict(self, images):
        """`{"boxes", "scores", "classes", "num_detections"}` numpy arrays for a batch."""
        out = self.model.predict_on_batch(self.inputs_for(images))
        return {key: np.asarray(out[key]) for key in CONTRACT_KEYS}
