"""Segmentation (and keypoint heatmap) families; importing this package registers them."""

from kerascv_suite.models.segmentation import (  # noqa: F401
    deconvnet,
    fcn,
    hourglass,
    segnet,
    unet,
)
from kerascv_suite.models.segmentation.hourglass import decode_heatmaps  # noqa: F401
