"""Detection models (registers the families)."""

from kerascv_suite.models.detection.detection_output import (DetectionDecoder, SSDDecoder,
                                                             YoloV1Decoder, YoloV1Output)
from kerascv_suite.models.detection.fast_rcnn import FastRCNN, fast_rcnn
from kerascv_suite.models.detection.faster_rcnn import FasterRCNN, faster_rcnn
from kerascv_suite.models.detection.mask_rcnn import MaskRCNN, mask_rcnn
from kerascv_suite.models.detection.rcnn import RCNN, fit_svms_and_regressors, rcnn
from kerascv_suite.models.detection.selective_search import (selective_search,
                                                             selective_search_batch)
from kerascv_suite.models.detection.single_shot import (detector_kind, make_inference_model,
                                                        make_loss)
from kerascv_suite.models.detection.ssd import load_vgg16_backbone, ssd, ssd_default_box_config
from kerascv_suite.models.detection.yolo_v1 import yolo_v1

__all__ = ["RCNN", "FastRCNN", "FasterRCNN", "MaskRCNN", "fast_rcnn", "faster_rcnn",
           "mask_rcnn",
           "fit_svms_and_regressors", "rcnn", "selective_search", "selective_search_batch"]
__all__ += ["DetectionDecoder", "SSDDecoder", "YoloV1Decoder", "YoloV1Output", "detector_kind",
            "load_vgg16_backbone", "make_inference_model", "make_loss", "ssd",
            "ssd_default_box_config", "yolo_v1"]
