"""Running exports with their own runtimes: TensorFlow (SavedModel), onnxruntime (ONNX),
LiteRT (TFLite; `tf.lite.Interpreter` where ai-edge-litert is missing).

`ExportedModel` runs any export by input name; `ExportedDetector` and `ExportedSegmenter`
wrap detector and segmenter exports with the interface the folder pipelines use
(`models.detection.Detector`'s `predict` / `inputs_for` / `input_size`, a Keras model's
`predict_on_batch` / `input_shape` / `output_shape`), reading class names, input size and
post-processing from the export's metadata.

Example:
    >>> detector = ExportedDetector("ssd.onnx", score_threshold=0.3)
    >>> out = detector.predict(images)  # (batch, H, W, 3) 0..255 at detector.input_size
    >>> out["boxes"].shape, detector.class_names
"""

from __future__ import annotations

import os

import numpy as np

from kerascv_suite.export.formats import check_format, format_of
from kerascv_suite.export.metadata import exported_metadata

CONTRACT_KEYS = ("boxes", "scores", "classes", "num_detections")


def tflite_interpreter(model, keep_tensors=False):
    """A LiteRT interpreter for the flatbuffer at path `model` (or its bytes);
    `keep_tensors` keeps every intermediate tensor readable after `invoke` (calibration)."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        # tf.lite.Interpreter is deprecated in favour of ai-edge-litert (the `export` extra)
        # but runs the same flatbuffers.
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    source = ({"model_content": bytes(model)} if isinstance(model, (bytes, bytearray))
              else {"model_path": os.fspath(model)})
    if not keep_tensors:
        return Interpreter(**source)
    import warnings

    with warnings.catch_warnings():  # "intended for debugging purposes only": calibration
        warnings.simplefilter("ignore", UserWarning)
        return Interpreter(**source, experimental_preserve_all_tensors=True)


class ExportedModel:
    """An export loaded with its runtime.

    Args:
        path: a SavedModel folder, `.onnx` or `.tflite` file.
        format: its format; None guesses it from `path`.

    Attributes:
        format: the format.
        metadata: what the export stores (`exported_metadata`), `{}` if nothing.
        kind: `"detector"`, `"segmenter"` (graph exports with named inputs and outputs),
            `"model"` / `"raw"` (Keras' own export: one input, its outputs in order).
        input_names: the graph's input names (graph exports).
    """

    def __init__(self, path, format=None):
        self.path = os.fspath(path)
        self.format = format or format_of(path)
        check_format(self.format)
        self.metadata = exported_metadata(self.path, self.format) or {}
        info = self.metadata.get("export") or {}
        self.kind = info.get("kind", "model")
        self.input_names = tuple(info.get("inputs") or ("images",))
        self.output_names = tuple(info.get("outputs") or ())
        if self.format == "saved_model":
            import tensorflow as tf

            self._artifact = tf.saved_model.load(self.path)
        elif self.format == "onnx":
            import onnxruntime

            self._session = onnxruntime.InferenceSession(
                self.path, providers=["CPUExecutionProvider"])
        else:
            self._interpreter = tflite_interpreter(self.path)

    @property
    def is_graph(self):
        return self.kind in ("detector", "segmenter")

    def __call__(self, *arrays):
        """Runs the export on `arrays` (float32, the graph's inputs in order).

        Returns:
            graph exports: a dict of NumPy outputs by name; Keras exports: the output array,
            or for a model with several outputs a dict of them by output name (the Keras
            model's output keys for a dict-output model).
        """
        arrays = [np.asarray(a, np.float32) for a in arrays]
        if self.format == "saved_model":
            import tensorflow as tf

            tensors = [tf.constant(a) for a in arrays]
            if self.is_graph:
                out = self._artifact.signatures["serving_default"](
                    **dict(zip(self.input_names, tensors)))
                return {k: np.asarray(v) for k, v in out.items()}
            return _as_outputs(self._artifact.serve(*tensors))
        if self.format == "onnx":
            names = [i.name for i in self._session.get_inputs()]
            feed = dict(zip(self.input_names if self.is_graph else names, arrays))
            outputs = self._session.run(None, feed)
            if self.is_graph or len(outputs) > 1:
                return {o.name: v for o, v in zip(self._session.get_outputs(), outputs)}
            return outputs[0]
        if self.is_graph or len(self._interpreter.get_output_details()) > 1:
            runner = self._interpreter.get_signature_runner()
            names = self.input_names if self.is_graph else list(runner.get_input_details())
            return {k: np.asarray(v) for k, v in runner(**dict(zip(names, arrays))).items()}
        return self._run_tflite(arrays)

    def _run_tflite(self, arrays):
        interpreter = self._interpreter
        details = interpreter.get_input_details()
        for detail, array in zip(details, arrays):
            # The batch dimension is dynamic (-1 in the signature); size it to this call.
            if tuple(detail["shape"]) != array.shape:
                interpreter.resize_tensor_input(detail["index"], array.shape)
        interpreter.allocate_tensors()
        for detail, array in zip(details, arrays):
            interpreter.set_tensor(detail["index"], array)
        interpreter.invoke()
        outputs = [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]
        return outputs[0] if len(outputs) == 1 else outputs


def _as_outputs(outputs):
    if isinstance(outputs, dict):
        if len(outputs) > 1:
            return {key: np.asarray(value) for key, value in outputs.items()}
        outputs = list(outputs.values())
    if isinstance(outputs, (list, tuple)):
        outputs = [np.asarray(o) for o in outputs]
        return outputs[0] if len(outputs) == 1 else outputs
    return np.asarray(outputs)


def load_exported(path, format=None):
    """Reloads an export as a function of NumPy images (and proposals, for Fast R-CNN and
    R-CNN exports): `predict(images, [proposals])` -> the output array of a Keras export
    (a dict by output name where it has several), or the dict of outputs of a detector /
    segmenter graph."""
    return ExportedModel(path, format)


def exported_task_model(path):
    """`ExportedDetector` or `ExportedSegmenter` for the export at `path`, by its kind.

    Raises:
        ValueError: the export holds neither a detector nor a segmenter.
    """
    model = ExportedModel(path)
    if model.kind == "detector":
        return ExportedDetector(model)
    if model.metadata.get("task") == "segmentation":
        return ExportedSegmenter(model)
    raise ValueError(f"{path} holds a {model.metadata.get('task') or 'model'} export, not a "
                     "detector or segmenter (re-export without --raw). Received: "
                     f"{path}")


class ExportedDetector:
    """A detector export, run as `models.detection.Detector` runs a Keras detector.

    The export's post-processing is baked in (its metadata's `export.decoder`); a higher
    `score_threshold` or lower `max_detections` is applied (a lower threshold than the
    baked one gives the baked one's detections) to its outputs, which gives the
    same detections as the graph built with them (NMS only lets a box suppress lower-scoring
    ones, and outputs come in score order).

    Args:
        export: an `ExportedModel` of a detector, or the path of one.
        score_threshold, max_detections: None keeps the export's.
        iou_threshold: must be None or the export's (NMS cannot be redone).
        max_proposals: selective-search proposals per image (Fast R-CNN, R-CNN exports).

    Raises:
        ValueError: the export is not a detector, or settings it cannot honour.
    """

    def __init__(self, export, score_threshold=None, iou_threshold=None, max_detections=None,
                 max_proposals=300):
        self.export = export if isinstance(export, ExportedModel) else ExportedModel(export)
        info = self.export.metadata.get("export") or {}
        if self.export.kind != "detector":
            raise ValueError(f"{self.export.path} is not a detector export (kind "
                             f"{self.export.kind!r}); export the detector without --raw. "
                             f"Received: {self.export.path}")
        baked = dict(info.get("decoder") or {})
        self.num_classes = int(info["num_classes"])
        self.needs_proposals = bool(info.get("needs_proposals"))
        self.num_proposals = int(info["inputs"]["proposals"][1]) if self.needs_proposals \
            else None
        self.max_proposals = min(int(max_proposals), self.num_proposals or int(max_proposals))
        self.input_size = tuple(int(d) for d in info["inputs"]["images"][1:3])
        self.class_names = self.export.metadata.get("class_names")
        self.metadata = self.export.metadata
        self.has_masks = "masks" in (info.get("outputs") or ())
        problems = []
        if iou_threshold is not None and abs(iou_threshold - baked["iou_threshold"]) > 1e-6:
            problems.append(f"iou_threshold={iou_threshold} (baked in: "
                            f"{baked['iou_threshold']})")
        if max_detections is not None and max_detections > baked["max_detections"]:
            problems.append(f"max_detections={max_detections} (baked in: "
                            f"{baked['max_detections']}, the most it can give)")
        if problems:
            raise ValueError(f"{self.export.path} has its post-processing inside; it cannot "
                             f"run with {', '.join(problems)}. Re-export with these settings "
                             "(kcv export --score-threshold/--iou-threshold/--max-detections).")
        # The baked threshold is the floor: a lower one gives the same detections.
        self.score_threshold = max(float(baked["score_threshold"]),
                                   float(score_threshold or 0.0))
        self.max_detections = int(max_detections or baked["max_detections"])
        self.decoder = {**baked, "score_threshold": self.score_threshold,
                        "max_detections": self.max_detections}

    def inputs_for(self, images, proposals=None):
        """`[images]`, plus proposals for Fast R-CNN / R-CNN exports (given `(batch, P, 4)`
        xyxy input pixels, or None: selective search on the images), cut or zero-padded to
        the export's proposal count."""
        images = np.asarray(images)
        if not self.needs_proposals:
            return [images.astype("float32")]
        if proposals is None:
            from kerascv_suite.models.detection.selective_search import selective_search_batch

            proposals = selective_search_batch(images.astype("uint8"),
                                               max_proposals=self.max_proposals)
        proposals = np.asarray(proposals, "float32")[:, :self.num_proposals]
        pad = self.num_proposals - proposals.shape[1]
        if pad:  # zero boxes: selective search's padding
            proposals = np.pad(proposals, ((0, 0), (0, pad), (0, 0)))
        return [images.astype("float32"), proposals]

    def predict(self, images, proposals=None):
        """`{"boxes", "scores", "classes", "num_detections"}` NumPy arrays for a batch, padded
        to `max_detections` rows; Mask R-CNN exports (`has_masks`) also give `masks`
        `(batch, max_detections, H, W)` in [0, 1], input pixels."""
        out = self.export(*self.inputs_for(images, proposals))
        return filter_detections(out, self.score_threshold, self.max_detections)


def filter_detections(out, score_threshold, max_detections):
    """Detections scoring above `score_threshold`, the first `max_detections` of each image
    (in the given order, the score order), padded as the contract (score 0, box 0, class -1;
    `masks`, where given, `(batch, N, H, W)` reordered with them and zero for padding).
    """
    boxes, scores = np.asarray(out["boxes"], np.float32), np.asarray(out["scores"], np.float32)
    classes = np.asarray(out["classes"]).astype(np.int32)
    num = np.asarray(out["num_detections"]).astype(np.int32).reshape(-1)
    rows = np.arange(scores.shape[1])[None, :]
    keep = (rows < num[:, None]) & (scores > score_threshold)
    order = np.argsort(~keep, axis=1, kind="stable")[:, :max_detections]

    def take(a):
        index = order.reshape(*order.shape, *(1,) * (a.ndim - 2))
        return np.take_along_axis(a, index, axis=1)

    kept = take(keep)
    filtered = {"boxes": np.where(kept[..., None], take(boxes), 0.0).astype(np.float32),
                "scores": np.where(kept, take(scores), 0.0).astype(np.float32),
                "classes": np.where(kept, take(classes), -1).astype(np.int32),
                "num_detections": kept.sum(axis=1).astype(np.int32)}
    if "masks" in out:
        masks = take(np.asarray(out["masks"], np.float32))
        filtered["masks"] = np.where(kept[..., None, None], masks, 0.0).astype(np.float32)
    return filtered


class ExportedSegmenter:
    """A segmenter export with the interface `pipelines.segment_folder` uses.

    `predict_on_batch` returns class probabilities `(batch, H, W, K)`; an export with the
    argmax inside gives one-hot maps (so tiles vote).

    Args:
        export: an `ExportedModel` of a segmenter, or the path of one.
    """

    def __init__(self, export):
        self.export = export if isinstance(export, ExportedModel) else ExportedModel(export)
        metadata = self.export.metadata
        if metadata.get("task") != "segmentation":
            raise ValueError(f"{self.export.path} is not a segmenter export (task "
                             f"{metadata.get('task')!r}). Received: {self.export.path}")
        info = metadata.get("export") or {}
        shape = metadata.get("input_shape") or [None, None, 3]
        self.argmax = self.export.kind == "segmenter"
        names = metadata.get("class_names")
        self.num_classes = int(info["num_classes"]) if self.argmax else None
        self.input_shape = (None, *shape)
        self.name = os.path.basename(self.export.path.rstrip("/"))
        self.class_names = names
        if self.num_classes is None:
            probe = np.zeros((1, *(d or 64 for d in shape)), np.float32)
            self.num_classes = int(np.asarray(self.export(probe)).shape[-1])
        self.output_shape = (None, *shape[:2], self.num_classes)

    def predict_on_batch(self, batch):
        out = self.export(np.asarray(batch, np.float32))
        if self.argmax:
            return np.eye(self.num_classes, dtype=np.float32)[np.asarray(out["masks"])]
        return np.asarray(out, np.float32)
