"""Training losses (keras.ops only, every backend, each serializable)."""

from kerascv_suite.losses.detection_targets import (pack_detection_targets,
                                                    unpack_detection_targets)
from kerascv_suite.losses.multibox_loss import MultiboxLoss
from kerascv_suite.losses.rcnn_losses import fast_rcnn_loss, rpn_loss
from kerascv_suite.losses.segmentation import (SegmentationLoss, dice_loss, segmentation_loss,
                                               sparse_cross_entropy)
from kerascv_suite.losses.smooth_l1 import SmoothL1Loss, smooth_l1
from kerascv_suite.losses.yolo_v1_loss import YoloV1Loss, yolo_v1_targets

__all__ = [
    "MultiboxLoss",
    "SegmentationLoss",
    "SmoothL1Loss",
    "YoloV1Loss",
    "dice_loss",
    "fast_rcnn_loss",
    "pack_detection_targets",
    "rpn_loss",
    "segmentation_loss",
    "smooth_l1",
    "sparse_cross_entropy",
    "unpack_detection_targets",
    "yolo_v1_targets",
]
