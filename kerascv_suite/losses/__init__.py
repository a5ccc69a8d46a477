"""Training losses (keras.ops only, every backend, each serializable)."""

from kerascv_suite.losses.detection_targets import (pack_detection_targets,
                                                    unpack_detection_targets)
from kerascv_suite.losses.multibox_loss import MultiboxLoss
from kerascv_suite.losses.rcnn_losses import fast_rcnn_loss, rpn_loss
from kerascv_suite.losses.smooth_l1 import SmoothL1Loss, smooth_l1
from kerascv_suite.losses.yolo_v1_loss import YoloV1Loss, yolo_v1_targets

__all__ = [
    "MultiboxLoss",
    "SmoothL1Loss",
    "fast_rcnn_loss",
    "rpn_loss",
    "smooth_l1",
    "YoloV1Loss",
    "pack_detection_targets",
    "unpack_detection_targets",
    "yolo_v1_targets",
]
