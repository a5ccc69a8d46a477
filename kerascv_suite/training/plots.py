"""Moved to `kerascv_suite.visualization` (`_pyplot` is now `pyplot`); shim, remove."""

from kerascv_suite.visualization.plots import (plot_confusion_matrix, plot_curves,  # noqa: F401
                                               plot_predictions, pyplot, pyplot as _pyplot)
