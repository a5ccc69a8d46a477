"""Segmentation (and keypoint heatmap) families; importing this package registers them.

`segment_image` (from `inference`) gives the class map of an image of any size: resized to
the model's input, or tiled at native resolution with the tiles' probabilities averaged.
"""

from kerascv_suite.models.segmentation import (  # noqa: F401
    deconvnet,
    decouplednet,
    fcn,
    hourglass,
    segnet,
    unet,
)
from kerascv_suite.models.segmentation.hourglass import decode_heatmaps  # noqa: F401
from kerascv_suite.models.segmentation.inference import segment_image  # noqa: F401
