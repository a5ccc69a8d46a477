"""Evaluation metrics on numpy arrays (framework-free, so every backend shares them)."""

from kerascv_suite.metrics.classification import (ClassificationReport, accuracy,
                                                  classification_report, confusion_matrix,
                                                  precision_recall_f1, top_k_accuracy)
from kerascv_suite.metrics.detection import (COCO_STAT_NAMES, COCOResult, coco_evaluate,
                                             coco_evaluate_arrays, voc_ap, voc_evaluate)

_SEGMENTATION = ("ConfusionAccumulator", "MeanIoUFromConfusion", "SegmentationScores",
                 "segmentation_confusion_matrix", "segmentation_scores")


def __getattr__(name):
    # metrics.segmentation defines a keras Metric: load keras only when it is asked for.
    if name in _SEGMENTATION:
        from kerascv_suite.metrics import segmentation

        return getattr(segmentation, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
