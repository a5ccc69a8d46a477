"""The export formats, their file names, and which Keras backend can write which."""

from pathlib import Path

# Our format names -> Keras `model.export` format names (the head-only `--raw` path).
FORMATS = {"saved_model": "tf_saved_model", "onnx": "onnx", "tflite": "litert"}
SUFFIXES = {"saved_model": "", "onnx": ".onnx", "tflite": ".tflite"}
# Formats each Keras backend can write with the packages this project installs: detector
# and segmenter graphs are traced with tf.function, so they need tensorflow; Keras' own
# export writes a SavedModel from jax (LiteRT needs tensorflow or torch; ONNX from jax needs
# jax2onnx, from torch onnxscript, neither installed).
BACKEND_FORMATS = {
    "tensorflow": ("saved_model", "onnx", "tflite"),
    "jax": ("saved_model",),
    "torch": (),
}


def check_format(format):
    """Raises ValueError unless `format` is one of `FORMATS`."""
    if format not in FORMATS:
        raise ValueError(f"format must be one of {sorted(FORMATS)}. Received: format={format!r}")


def check_backend(format, backend, graph=False):
    """Raises ValueError when the Keras `backend` cannot write `format` (`graph`: a
    detector / segmenter graph, which only the tensorflow backend traces)."""
    allowed = ("saved_model", "onnx", "tflite") if backend == "tensorflow" else (
        () if graph else BACKEND_FORMATS.get(backend, ()))
    if format not in allowed:
        what = "a detector or segmenter graph" if graph else f"format={format!r}"
        raise ValueError(
            f"The {backend} backend cannot export {what} here; it supports "
            f"{list(allowed)}. Export with KERAS_BACKEND=tensorflow "
            f"(the model is the same on every backend). Received: format={format!r}, "
            f"backend={backend!r}")


def format_of(path):
    """The format of an export at `path`: a folder is a SavedModel, else by suffix.

    Raises:
        ValueError: a file that is neither `.onnx` nor `.tflite`.
    """
    path = Path(path)
    if path.is_dir():
        return "saved_model"
    for format, suffix in SUFFIXES.items():
        if suffix and path.suffix.lower() == suffix:
            return format
    raise ValueError(f"{path} is not an export: expected a SavedModel folder, a .onnx or a "
                     f".tflite file. Received: {path}")


def is_export(ref):
    """Whether the model reference `ref` names an exported file (not a registry name,
    `.keras` file or MLflow URI)."""
    path = Path(str(ref))
    if path.suffix.lower() in (".onnx", ".tflite"):
        return True
    return path.is_dir() and (path / "saved_model.pb").is_file()
