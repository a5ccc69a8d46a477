"""Evaluation metrics on numpy arrays (framework-free, so every backend shares them)."""

from kerascv_suite.metrics.classification import (ClassificationReport, accuracy,
                                                  classification_report, confusion_matrix,
                                                  precision_recall_f1, top_k_accuracy)
from kerascv_suite.metrics.detection import (COCO_STAT_NAMES, COCOResult, coco_evaluate,
                                             coco_evaluate_arrays, voc_ap, voc_evaluate)
