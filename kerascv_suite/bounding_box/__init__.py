"""Box machinery for detectors, on `keras.ops` so it runs on every backend.

Format conversion and IoU come from `keras.utils.bounding_boxes` (`convert_format`,
`compute_iou`, `clip_to_image_size`, ...), re-exported here; this package adds what Keras
lacks, in the spirit of torchvision's detection utilities: `BoxCoder`, `Matcher`,
`BalancedPositiveNegativeSampler`, class-aware `batched_nms`, RPN anchors and SSD default
boxes, and `elementwise_iou` (the IoU of corresponding boxes, built on `compute_iou`).
Boxes are absolute-pixel `xyxy` unless a function takes a `box_format`.
"""

from keras.utils.bounding_boxes import clip_to_image_size, compute_iou, convert_format

from kerascv_suite.bounding_box.anchors import (SSD300, SSD512, rpn_anchors, ssd_default_boxes,
                                                ssd_scales)
from kerascv_suite.bounding_box.box_coder import BoxCoder
from kerascv_suite.bounding_box.iou import elementwise_iou
from kerascv_suite.bounding_box.matching import BalancedPositiveNegativeSampler, Matcher
from kerascv_suite.bounding_box.nms import batched_nms

__all__ = [
    "SSD300",
    "SSD512",
    "BalancedPositiveNegativeSampler",
    "BoxCoder",
    "Matcher",
    "batched_nms",
    "clip_to_image_size",
    "compute_iou",
    "convert_format",
    "elementwise_iou",
    "rpn_anchors",
    "ssd_default_boxes",
    "ssd_scales",
]
