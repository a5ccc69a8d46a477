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


# Peak memory of a TFLite conversion (ONNX of a graph goes through it too) ~ a fixed part +
# a multiple of the float32 weights, measured with this project's converters (TF 2.21,
# 2026-12-02): a detector graph (decode + NMS, variables frozen into the graph) SSD300 26.3 M
# parameters 5.2 GB, Faster R-CNN VGG16 137 M > 15 GB, YOLO v1 272 M > 22.4 GB (killed by the
# OOM killer); Keras' own export of a model VGG16 138 M 4.5 GB.
CONVERSION_BYTES = {"graph": (2e9, 28), "model": (2e9, 6)}


def check_conversion_memory(model, formats, graph=False, available=None):
    """Raises ValueError, before converting, when a TFLite or ONNX conversion of `model`
    would need more memory than the machine has available (the converter would be killed by
    the OOM killer instead): the estimate is `CONVERSION_BYTES` for `graph` (a detector or
    segmenter graph) or Keras' own export. `available`: bytes, None reads /proc/meminfo
    (no check where it cannot be read)."""
    converted = [f for f in formats if f in ("tflite", "onnx")]
    if not converted:
        return
    available = available if available is not None else available_memory()
    if available is None:
        return
    weights = 4 * int(model.count_params())
    fixed, factor = CONVERSION_BYTES["graph" if graph else "model"]
    needed = fixed + factor * weights
    if needed > available:
        raise ValueError(
            f"Converting {model.name!r} ({weights / 1e6:.0f} MB of float32 weights) to "
            f"{' and '.join(converted)} needs about {needed / 1e9:.0f} GB of memory and this "
            f"machine has {available / 1e9:.1f} GB available; export it as saved_model "
            "(no conversion), or convert on a machine with more memory. Received: "
            f"format={converted[0]!r}")


def available_memory():
    """MemAvailable of /proc/meminfo in bytes, or None where there is none."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None
