"""Exporting models for deployment, and running the exports.

Formats (`FORMATS`): "saved_model" (a TensorFlow SavedModel folder), "onnx", "tflite"
(a LiteRT flatbuffer). Every export is self-contained: it takes RGB images
`(batch, height, width, 3)` in 0..255 (the model's preprocessing is inside) and carries the
model's metadata (`export.metadata`).

* Detectors of every family export as detectors (`export.graph`): preprocessing, decoding
  and NMS inside, outputs `boxes (B, N, 4)` xyxy input pixels, `scores (B, N)`,
  `classes (B, N)`, `num_detections (B,)`, dynamic batch; Fast R-CNN and R-CNN take
  `proposals (B, P, 4)` as a second input; Mask R-CNN also returns `masks (B, N, H, W)`
  in [0, 1], input pixels. `raw=True` keeps the head-only export.
* Segmenters export probabilities, or with `argmax=True` the class map; classifiers their
  outputs (Keras' own `model.export`).

Modules: `formats` (names, backends), `graph` (the traced inference graph), `writers`
(`export_model`), `metadata` (stored and read back), `runtimes` (`ExportedModel`,
`ExportedDetector`, `ExportedSegmenter`), `checks` (`verify_export`, `match_detections`,
`match_masks`), `quantize` (float16 / int8 TFLite) and `calibration` (int8's
representative images).

Example:
    >>> export_model(keras.saving.load_model("best.keras"), "ssd.onnx", "onnx")
    >>> ExportedDetector("ssd.onnx").predict(images)["boxes"]
"""

from kerascv_suite.export.calibration import Calibration, calibration_inputs
from kerascv_suite.export.checks import (ExportCheck, box_iou, match_detections,
                                         match_masks, matched_pairs, random_inputs,
                                         verify_export)
from kerascv_suite.export.formats import (BACKEND_FORMATS, FORMATS, SUFFIXES, check_format,
                                          format_of, is_export)
from kerascv_suite.export.metadata import (METADATA_FORMATS, SAVED_MODEL_METADATA,
                                           exported_metadata, write_metadata)
from kerascv_suite.export.runtimes import (ExportedDetector, ExportedModel,
                                           ExportedSegmenter, exported_task_model,
                                           filter_detections, load_exported)
from kerascv_suite.export.quantize import QUANTIZATIONS
from kerascv_suite.export.writers import export_model, export_models

__all__ = ["BACKEND_FORMATS", "FORMATS", "METADATA_FORMATS", "QUANTIZATIONS",
           "SAVED_MODEL_METADATA", "SUFFIXES", "Calibration", "ExportCheck", "ExportedDetector", "ExportedModel",
           "ExportedSegmenter", "box_iou", "calibration_inputs", "check_format", "export_model", "export_models",
           "exported_metadata", "exported_task_model", "filter_detections", "format_of",
           "is_export", "load_exported", "match_detections", "match_masks",
           "matched_pairs", "random_inputs",
           "verify_export", "write_metadata"]
