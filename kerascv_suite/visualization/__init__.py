"""Drawing for people: mask overlays and palettes, detection boxes, matplotlib plots.

Importing this package imports numpy only; OpenCV and matplotlib load on first use.

Example:
    >>> from kerascv_suite.visualization import overlay_panel, plot_curves
    >>> panel = overlay_panel(image, truth, prediction)  # (height, 3 * width, 3) uint8
"""

from kerascv_suite.visualization.boxes import class_colour, draw_detections, sample_grid
from kerascv_suite.visualization.masks import colorize, overlay_mask, overlay_panel, palette_array
from kerascv_suite.visualization.plots import (plot_confusion_matrix, plot_curves, plot_pr_curves,
                                               plot_predictions, plot_val_ap, pyplot)

__all__ = [
    "class_colour",
    "colorize",
    "draw_detections",
    "overlay_mask",
    "overlay_panel",
    "palette_array",
    "plot_confusion_matrix",
    "plot_curves",
    "plot_pr_curves",
    "plot_predictions",
    "plot_val_ap",
    "pyplot",
    "sample_grid",
]
