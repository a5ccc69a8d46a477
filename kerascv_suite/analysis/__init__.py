"""Model analysis: per-layer parameters, multiply-accumulates, receptive field and jump; CAM."""

from kerascv_suite.analysis.cam import (CamHead, CamResult, class_activation_map, explain_images,
                                        find_cam_head, overlay_heatmap)
from kerascv_suite.analysis.summary import LayerStats, ModelStats, analyze_model, format_table

__all__ = [
    "CamHead",
    "CamResult",
    "LayerStats",
    "ModelStats",
    "analyze_model",
    "class_activation_map",
    "explain_images",
    "find_cam_head",
    "format_table",
    "overlay_heatmap",
]
