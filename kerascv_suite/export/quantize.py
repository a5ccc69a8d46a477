"""Post-training quantization of TFLite exports: `"float16"` and `"int8"`.

* float16: weights stored as float16 (half the file), computed in float32 on CPUs
  (`target_spec.supported_types = [tf.float16]`).
* int8: weights and activations of the network's layers (convolutions, dense layers,
  pooling, padding) in int8, ranges calibrated on a representative dataset
  (`export.calibration`); preprocessing, box decoding, scores and NMS stay float32, and so
  do the inputs and outputs: the graph contract (images 0..255 float32 -> boxes, scores,
  classes, num_detections) is that of the float32 export.

Why int8 graphs are calibrated here and not by `TFLiteConverter.representative_dataset`:
TensorFlow 2.21's calibrator crashes (segmentation fault in `calibrator._feed_tensors`) on
the graphs with the NMS's `While` / `If` control flow. The calibration it does is simple to
do ourselves: run the float32 flatbuffer on the samples with every tensor kept, record each
float tensor's min / max in the flatbuffer (where the calibrator writes them), then the
converter's own quantizer (`mlir_quantize`) quantizes the ops listed in `INT8_OPS`. Keras
models exported with Keras' own export (classifiers, segmenters without `--argmax`, `--raw`
heads) have no control flow and go through the converter's calibrator.
"""

from __future__ import annotations

import numpy as np

QUANTIZATIONS = ("float16", "int8")
# TFLite ops quantized in int8 graphs: the network's layers. Everything else (decoding
# arithmetic, softmax / sigmoid scores, L2 normalization, gathers, NMS) stays float32, so
# scores keep their float resolution: int8 scores (steps of 1/256) would tie and reorder
# detections.
INT8_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "FULLY_CONNECTED",
            "MAX_POOL_2D", "AVERAGE_POOL_2D", "MEAN", "PAD")


def check_quantize(quantize, formats):
    """Raises ValueError unless `quantize` is None or one of `QUANTIZATIONS` for TFLite
    only (`formats`: the formats being written)."""
    if quantize is None:
        return
    if quantize not in QUANTIZATIONS:
        raise ValueError(f"quantize must be one of {list(QUANTIZATIONS)} or None. Received: "
                         f"quantize={quantize!r}")
    others = sorted(set(formats) - {"tflite"})
    if others:
        raise ValueError(f"--quantize {quantize} applies to TFLite exports only; export "
                         f"with --format tflite, or drop --quantize for {', '.join(others)}. "
                         f"Received: --format {', '.join(others)}")


def float16_options(converter):
    """Sets a `TFLiteConverter` to store float16 weights."""
    import tensorflow as tf

    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]


def keras_converter_options(quantize, calibration):
    """The converter settings Keras' LiteRT export (`model.export(..., **options)`) takes
    for `quantize` (int8: calibrated on `calibration`, float inputs and outputs)."""
    import tensorflow as tf

    if quantize is None:
        return {}
    if quantize == "float16":
        return {"optimizations": [tf.lite.Optimize.DEFAULT],
                "target_spec": {"supported_types": [tf.float16]}}
    return {"optimizations": [tf.lite.Optimize.DEFAULT], "representative_dataset": calibration}


def int8_flatbuffer(flatbuffer, calibration):
    """The float32 TFLite `flatbuffer` (a graph export, signature inputs named) with the
    `INT8_OPS` quantized to int8, calibrated on `calibration` (lists of inputs in the
    signature's order). See the module docstring."""
    from tensorflow.lite.python import convert
    from tensorflow.lite.python import schema_py_generated as schema

    low, high = tensor_ranges(flatbuffer, calibration)
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(flatbuffer, 0))
    graph = model.subgraphs[0]
    index = {}
    for i, tensor in enumerate(graph.tensors):
        index.setdefault(tensor.name.decode(), i)
    for name in low:
        tensor = graph.tensors[index[name]]
        params = tensor.quantization or schema.QuantizationParametersT()
        params.min, params.max = [low[name]], [high[name]]
        tensor.quantization = params
    names = {value: key for key, value in vars(schema.BuiltinOperator).items()
             if not key.startswith("_")}
    present = {names[max(code.builtinCode, code.deprecatedBuiltinCode)]
               for code in model.operatorCodes}
    # mlir_quantize's default inference type is int8; inputs and outputs stay float32.
    return convert.mlir_quantize(pack(model), denylisted_ops=sorted(present - set(INT8_OPS)))


def pack(model):
    """A `ModelT` (the flatbuffer object API) back to TFLite bytes."""
    import flatbuffers

    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def tensor_ranges(flatbuffer, calibration):
    """`(min, max)` dicts by tensor name of every float32 tensor of the main graph over the
    calibration samples (the float32 model run with all tensors kept)."""
    from kerascv_suite.export.runtimes import tflite_interpreter

    interpreter = tflite_interpreter(flatbuffer, keep_tensors=True)
    inputs = [d["index"] for d in interpreter.get_signature_runner()
              .get_input_details().values()]
    details = [d for d in interpreter.get_tensor_details() if d["dtype"] == np.float32]
    low, high, shapes = {}, {}, None
    for sample in calibration():
        arrays = [np.asarray(a, np.float32) for a in sample]
        if shapes != [a.shape for a in arrays]:
            shapes = [a.shape for a in arrays]
            for i, array in zip(inputs, arrays):
                interpreter.resize_tensor_input(i, array.shape)
            interpreter.allocate_tensors()
        for i, array in zip(inputs, arrays):
            interpreter.set_tensor(i, array)
        interpreter.invoke()
        for detail in details:
            try:
                value = interpreter.get_tensor(detail["index"])
            except ValueError:  # a tensor without data (optional operand)
                continue
            if value.size:
                name = detail["name"]
                low[name] = min(low.get(name, np.inf), float(value.min()))
                high[name] = max(high.get(name, -np.inf), float(value.max()))
    if not low:
        raise ValueError("The calibration set is empty; nothing to calibrate int8 on.")
    return low, high
