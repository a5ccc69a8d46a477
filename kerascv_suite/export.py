"""Exporting models for inference with Keras' own `model.export`, and reloading the exports.

Formats:
    "saved_model": a TensorFlow SavedModel folder (`serve` endpoint).
    "onnx": an ONNX file (tensorflow backend: converted with tf2onnx).
    "tflite": a LiteRT (TensorFlow Lite) flatbuffer.

Every export is self-contained: models own their preprocessing, so the exported graph takes
RGB images `(batch, height, width, channels)` in 0..255, like the Keras model.
`load_exported` reloads an export as a NumPy function, so an export can be checked against
the model it came from (`verify_export`).

The model's metadata (`models.describe`: task, class names, registry name and builder
arguments, input shape, preprocessing, decoder settings) goes with the export where the
format has a place for it: ONNX `metadata_props` (one entry per field, the value as JSON) and
a SavedModel's `assets/kcv_metadata.json`; `exported_metadata` reads it back. (TFLite
metadata is not written yet.)
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import numpy as np

# Our format names -> Keras `model.export` format names.
FORMATS = {"saved_model": "tf_saved_model", "onnx": "onnx", "tflite": "litert"}
SUFFIXES = {"saved_model": "", "onnx": ".onnx", "tflite": ".tflite"}
METADATA_FORMATS = ("onnx", "saved_model")
SAVED_MODEL_METADATA = "assets/kcv_metadata.json"
# Formats each Keras backend can write with the packages this project installs
# (LiteRT needs tensorflow or torch; ONNX from jax needs jax2onnx, from torch onnxscript).
BACKEND_FORMATS = {
    "tensorflow": ("saved_model", "onnx", "tflite"),
    "jax": ("saved_model",),
    "torch": (),
}


@dataclasses.dataclass(frozen=True)
class ExportCheck:
    """Outputs of an export compared with the Keras model on the same images.

    Attributes:
        max_abs_diff: largest absolute difference over all outputs.
        batch_size: images compared.
    """

    max_abs_diff: float
    batch_size: int

    def ok(self, atol=1e-4):
        return self.max_abs_diff <= atol


def _check_format(format):
    if format not in FORMATS:
        raise ValueError(f"format must be one of {sorted(FORMATS)}. Received: format={format!r}")


def export_model(model, path, format="saved_model", overwrite=False):
    """Writes `model` for inference in `format` at `path`, with its metadata where the
    format has a place for it (see the module docstring).

    Args:
        model: a built `keras.Model` with one image input.
        path: output folder (saved_model) or file (onnx, tflite).
        format: "saved_model", "onnx" or "tflite".
        overwrite: replace an existing file or folder at `path`.

    Returns:
        The `Path` written.

    Raises:
        ValueError: an unknown format, or one the current Keras backend cannot write.
        FileExistsError: `path` exists and `overwrite` is False.
    """
    import keras

    _check_format(format)
    backend = keras.backend.backend()
    if format not in BACKEND_FORMATS.get(backend, ()):
        raise ValueError(
            f"The {backend} backend cannot export format={format!r} here; it supports "
            f"{list(BACKEND_FORMATS.get(backend, ()))}. Export with KERAS_BACKEND=tensorflow "
            f"(the model is the same on every backend). Received: format={format!r}, "
            f"backend={backend!r}"
        )
    path = Path(path)
    if path.exists():
        if not overwrite:
            raise FileExistsError(f"{path} exists; pass overwrite=True to replace it.")
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    if not getattr(model, "_called", True):
        # A model loaded from .keras has never run; Keras' ONNX export needs one call to
        # trace its input signature.
        model(np.zeros((1, *model.inputs[0].shape[1:]), "float32"))
    model.export(os.fspath(path), format=FORMATS[format], verbose=False)
    write_metadata(path, format, model)
    return path


def write_metadata(path, format, model):
    """Stores `describe(model)` in the export at `path`: ONNX `metadata_props` or a
    SavedModel asset; nothing for TFLite. Returns whether it was written."""
    import json

    from kerascv_suite.models.metadata import describe, to_json

    fields = to_json(describe(model))
    if format == "onnx":
        import onnx

        proto = onnx.load(os.fspath(path))
        kept = [p for p in proto.metadata_props if p.key not in fields]
        del proto.metadata_props[:]
        proto.metadata_props.extend(kept)
        for key, value in fields.items():
            proto.metadata_props.add(key=key, value=json.dumps(value))
        onnx.save(proto, os.fspath(path))
        return True
    if format == "saved_model":
        target = Path(path) / SAVED_MODEL_METADATA
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(fields, indent=1), encoding="utf-8")
        return True
    return False


def exported_metadata(path, format):
    """The metadata `export_model` stored (the keys of `models.describe`, JSON values:
    lists for tuples), or None where the export has none."""
    import json

    _check_format(format)
    if format == "onnx":
        import onnx

        from kerascv_suite.models.metadata import FIELDS

        props = {p.key: p.value for p in onnx.load(os.fspath(path)).metadata_props}
        if not set(FIELDS) <= set(props):
            return None
        return {key: json.loads(props[key]) for key in FIELDS}
    if format == "saved_model":
        target = Path(path) / SAVED_MODEL_METADATA
        return json.loads(target.read_text(encoding="utf-8")) if target.is_file() else None
    return None


def load_exported(path, format):
    """Reloads an export as a function from images to the model's output(s) as NumPy.

    saved_model is loaded with `tf.saved_model.load`, onnx with onnxruntime and tflite with
    the TensorFlow Lite interpreter, the runtimes a deployment would use.

    Args:
        path: what `export_model` wrote.
        format: "saved_model", "onnx" or "tflite".

    Returns:
        `predict(images) -> np.ndarray` (or a list for several outputs), with images a float32
        array `(batch, height, width, channels)`.
    """
    _check_format(format)
    path = os.fspath(path)
    if format == "saved_model":
        import tensorflow as tf

        artifact = tf.saved_model.load(path)

        def predict(images):
            return _to_numpy(artifact.serve(tf.constant(images, tf.float32)))

        return predict
    if format == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        input_name = session.get_inputs()[0].name

        def predict(images):
            outputs = session.run(None, {input_name: np.asarray(images, np.float32)})
            return outputs[0] if len(outputs) == 1 else outputs

        return predict
    interpreter = _tflite_interpreter(path)

    def predict(images):
        images = np.asarray(images, np.float32)
        detail = interpreter.get_input_details()[0]
        # The batch dimension is dynamic (-1 in the signature); size it to this call.
        if tuple(detail["shape"]) != images.shape:
            interpreter.resize_tensor_input(detail["index"], images.shape)
        interpreter.allocate_tensors()
        interpreter.set_tensor(detail["index"], images)
        interpreter.invoke()
        outputs = [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]
        return outputs[0] if len(outputs) == 1 else outputs

    return predict


def _tflite_interpreter(path):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        # tf.lite.Interpreter is deprecated in favour of ai-edge-litert (the `export` extra)
        # but runs the same flatbuffers.
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    return Interpreter(model_path=path)


def _to_numpy(outputs):
    if isinstance(outputs, dict):
        outputs = list(outputs.values())
    if isinstance(outputs, (list, tuple)):
        outputs = [np.asarray(o) for o in outputs]
        return outputs[0] if len(outputs) == 1 else outputs
    return np.asarray(outputs)


def verify_export(model, path, format, batch_size=2, seed=0):
    """Runs the export and the Keras model on the same random images and compares them.

    Args:
        model: the Keras model that was exported.
        path: the export.
        format: its format.
        batch_size: images to compare (uniform 0..255, the models' input range).
        seed: seed of the images.

    Returns:
        An `ExportCheck`.
    """
    shape = tuple(model.inputs[0].shape[1:])
    images = np.random.default_rng(seed).uniform(0, 255, (batch_size, *shape)).astype("float32")
    expected = model.predict(images, verbose=0)
    actual = load_exported(path, format)(images)
    expected = expected if isinstance(expected, (list, tuple)) else [expected]
    actual = actual if isinstance(actual, (list, tuple)) else [actual]
    diff = max(float(np.max(np.abs(np.asarray(a) - np.asarray(e)))) for a, e in zip(actual, expected))
    return ExportCheck(max_abs_diff=diff, batch_size=batch_size)
