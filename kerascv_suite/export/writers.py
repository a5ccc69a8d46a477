"""`export_model`: a model as a SavedModel folder, an ONNX file or a TFLite flatbuffer.

Detectors and (with `argmax`) segmenters are exported as their inference graph
(`export.graph`); other models, and detectors with `raw=True` (the YOLO v1 / SSD head as it
is), with Keras' own `model.export`. Every export carries the model's metadata
(`export.metadata`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from kerascv_suite.export.calibration import calibration_inputs
from kerascv_suite.export.formats import (FORMATS, check_backend, check_conversion_memory,
                                          check_format)
from kerascv_suite.export.graph import detector_graph, export_kind, segmenter_graph
from kerascv_suite.export.metadata import write_metadata
from kerascv_suite.export.onnx_fixes import install_floor_div_fix
from kerascv_suite.export.quantize import (check_quantize, float16_options, int8_flatbuffer,
                                           keras_converter_options)

ONNX_OPSET = 17


def export_model(model, path, format="saved_model", overwrite=False, raw=False, argmax=False,
                 score_threshold=None, iou_threshold=None, max_detections=None,
                 num_proposals=300, quantize=None, data=None, calibration_images=64):
    """Writes `model` for inference in `format` at `path`; see `export_models`.

    Returns:
        The `Path` written.
    """
    return export_models(model, {format: path}, overwrite=overwrite, raw=raw, argmax=argmax,
                         score_threshold=score_threshold, iou_threshold=iou_threshold,
                         max_detections=max_detections, num_proposals=num_proposals,
                         quantize=quantize, data=data,
                         calibration_images=calibration_images)[format]


def export_models(model, paths, overwrite=False, raw=False, argmax=False,
                  score_threshold=None, iou_threshold=None, max_detections=None,
                  num_proposals=300, quantize=None, data=None, calibration_images=64):
    """Writes `model` for inference in each format of `paths`, with its metadata (one
    traced graph, and one TFLite conversion for both TFLite and ONNX).

    Args:
        model: a built `keras.Model`: a detector of any family (training or inference form),
            a segmenter, a classifier.
        paths: `{format: path}`; format "saved_model" (path: a folder), "onnx" or "tflite"
            (a file).
        overwrite: replace an existing file or folder at `path`.
        raw: export a YOLO v1 / SSD training model's head as it is (no decode, no NMS).
        argmax: a segmenter exports its class map `(batch, H, W)` instead of probabilities.
        score_threshold, iou_threshold, max_detections: a detector's post-processing baked
            into the graph; None keeps the model's (`describe(model)["decoder"]`).
        num_proposals: proposals per image a Fast R-CNN / R-CNN export takes.
        quantize: TFLite only: None (float32), "float16" or "int8" (post-training; see
            `export.quantize`). The inputs and outputs stay float32.
        data: int8: what to calibrate on, None (the built-in set the model's recipe
            trained on), "shapes", "digits" or a folder of images (`export.calibration`).
        calibration_images: int8: how many images calibrate.

    Returns:
        `{format: Path}` written.

    Raises:
        ValueError: an unknown format, one the current Keras backend cannot write, a TFLite
            / ONNX conversion that needs more memory than is available, `raw` on an
            R-CNN-family detector, `argmax` on a model that is not a segmenter, or
            `quantize` with a format other than tflite.
        FileExistsError: `path` exists and `overwrite` is False.
    """
    import keras

    for format in paths:
        check_format(format)
    check_quantize(quantize, paths)
    kind = export_kind(model, raw=raw, argmax=argmax)
    for format in paths:
        check_backend(format, keras.backend.backend(), graph=kind != "model")
    check_conversion_memory(model, paths, graph=kind != "model")
    if kind == "model" and not _has_graph(model):
        raise ValueError(f"{type(model).__name__} {model.name!r} has no head-only export "
                         "(it is a subclassed detector whose call already decodes); export "
                         "it without --raw. Received: raw=True")
    paths = {format: Path(path) for format, path in paths.items()}
    for path in paths.values():
        if path.exists():
            if not overwrite:
                raise FileExistsError(f"{path} exists; pass overwrite=True to replace it.")
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        path.parent.mkdir(parents=True, exist_ok=True)
    quantization = {"quantization": quantize or "float32"}
    if kind == "model":
        calibration = None
        if quantize == "int8":
            shape = [d or 64 for d in model.inputs[0].shape[1:]]
            calibration = calibration_inputs(model, shape, data, calibration_images)
            quantization["calibration"] = calibration.source
        for format, path in paths.items():
            _keras_export(model, path, format, keras_converter_options(quantize, calibration))
            write_metadata(path, format, model,
                           {"kind": "raw" if raw else "model", **quantization})
        return paths
    if kind == "detector":
        graph = detector_graph(model, score_threshold, iou_threshold, max_detections,
                               num_proposals)
    else:
        graph = segmenter_graph(model)
    calibration = None
    if quantize == "int8":
        proposals = graph.inputs.get("proposals")
        calibration = calibration_inputs(model, graph.inputs["images"][1:], data,
                                         calibration_images, num_proposals=proposals and
                                         proposals[1])
        quantization["calibration"] = calibration.source
    write_graph(graph, paths, quantize, calibration)
    for format, path in paths.items():
        write_metadata(path, format, graph.model, {**graph.info, **quantization})
    return paths


def _has_graph(model):
    try:
        return bool(model.inputs)
    except (AttributeError, ValueError):
        return False


def _keras_export(model, path, format, options=None):
    if not getattr(model, "_called", True):
        # A model loaded from .keras has never run; Keras' ONNX export needs one call to
        # trace its input signature.
        model(np.zeros((1, *(d or 64 for d in model.inputs[0].shape[1:])), "float32"))
    model.export(os.fspath(path), format=FORMATS[format], verbose=False, **(options or {}))
    if format == "onnx":
        check_onnx_loads(path, model.name)


def check_onnx_loads(path, name):
    """Removes the ONNX file at `path` and raises ValueError when onnxruntime cannot load
    it: tf2onnx writes ops it cannot convert as they are (e.g. the grouped convolutions of
    alexnet_two_tower, MaxPoolingWithArgmax's BitwiseAnd / Bitcast), an invalid graph."""
    import onnxruntime

    try:
        onnxruntime.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime's InvalidGraph / Fail name the node
        Path(path).unlink(missing_ok=True)
        reason = str(error).splitlines()[0][-200:]
        raise ValueError(f"tf2onnx cannot convert every op of {name!r} to ONNX (onnxruntime: "
                         f"{reason}); export it as saved_model or tflite. Received: "
                         "format='onnx'") from error


def write_graph(graph, paths, quantize=None, calibration=None):
    """Writes a `ServingGraph` in several formats, `{format: path}` (see `export.graph`;
    the ONNX file is converted from the TFLite flatbuffer, made once for both; `quantize`
    and `calibration` apply to the TFLite file, see `export.quantize`)."""
    import tensorflow as tf

    for format, path in paths.items():
        check_format(format)
    if "saved_model" in paths:
        tf.saved_model.save(graph.module, os.fspath(paths["saved_model"]),
                            signatures={"serving_default": graph.serve})
    if "tflite" not in paths and "onnx" not in paths:
        return
    try:
        flatbuffer = tflite_flatbuffer(graph, "float16" if quantize == "float16" else None)
    except Exception as error:  # the converter's ConverterError names the op
        if "tflite" in paths:
            op = _unsupported_op(str(error))
            raise ValueError(f"TFLite's builtin ops cannot express {op} of "
                             f"{graph.model.name!r}, and the Flex delegate is not part of "
                             "LiteRT's runtime; export it as saved_model or onnx. Received: "
                             "format='tflite'") from error
        flatbuffer = None
    if "tflite" in paths:
        if quantize == "int8":
            flatbuffer = int8_flatbuffer(flatbuffer, calibration)
        Path(paths["tflite"]).write_bytes(flatbuffer)
    if "onnx" in paths and flatbuffer is None:
        # No NMS in this graph (a segmenter): tf2onnx's TensorFlow frontend converts it.
        import tf2onnx

        install_floor_div_fix()
        specs = graph.serve.get_concrete_function().structured_input_signature[0]
        tf2onnx.convert.from_function(graph.serve, input_signature=specs, opset=ONNX_OPSET,
                                      output_path=os.fspath(paths["onnx"]))
    elif "onnx" in paths:
        with tempfile.TemporaryDirectory() as tmp:
            source = Path(tmp) / "graph.tflite"
            source.write_bytes(flatbuffer)
            onnx_from_tflite(source, paths["onnx"], graph)


def tflite_flatbuffer(graph, quantize=None):
    """The graph as a TFLite flatbuffer with builtin ops only: variables frozen first, the
    control flow kept as TFLite While / If, the signature named as the graph's
    (`quantize="float16"`: float16 weights)."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2)

    concrete = graph.serve.get_concrete_function()
    frozen = convert_variables_to_constants_v2(concrete, lower_control_flow=False)
    keys = sorted(graph.outputs)  # tf.nest flattens a dict by sorted keys
    specs = [tf.TensorSpec(spec.shape, spec.dtype, name=name)
             for name, spec in zip(graph.inputs, concrete.structured_input_signature[0])]

    def named(*inputs):
        return dict(zip(keys, frozen(*inputs)))

    function = tf.function(named, input_signature=specs).get_concrete_function()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function], graph.module)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize == "float16":
        float16_options(converter)
    return converter.convert()


def _unsupported_op(message):
    import re

    found = re.search(r"'(tf\.\w+)' op is neither a custom op nor a flex op", message)
    return f"the op {found.group(1)}" if found else "an op"


def tflite_signature_names(path):
    """`({tensor name: input name}, {tensor name: output name})` of a TFLite file's
    signature (names as the `ServingGraph` gives them)."""
    from kerascv_suite.export.runtimes import tflite_interpreter

    interpreter = tflite_interpreter(path)
    runner = interpreter.get_signature_runner()
    tensors = {d["index"]: d["name"] for d in interpreter.get_input_details()}
    tensors.update({d["index"]: d["name"] for d in interpreter.get_output_details()})
    inputs = {tensors[d["index"]]: key for key, d in runner.get_input_details().items()}
    outputs = {tensors[d["index"]]: key for key, d in runner.get_output_details().items()}
    return inputs, outputs


def onnx_from_tflite(source, path, graph):
    """Converts the TFLite file `source` to ONNX at `path` (tf2onnx's TFLite frontend) and
    names its inputs and outputs as the graph does (`images`, `boxes`...)."""
    import onnx
    import tf2onnx

    install_floor_div_fix()
    tf2onnx.convert.from_tflite(os.fspath(source), opset=ONNX_OPSET,
                                output_path=os.fspath(path))
    inputs, outputs = tflite_signature_names(source)
    proto = onnx.load(os.fspath(path))
    # Identity nodes carry the new names, so names captured inside loop bodies stay valid.
    first, last = [], []
    for value in proto.graph.input:
        if value.name in inputs:
            first.append(onnx.helper.make_node("Identity", [inputs[value.name]],
                                                 [value.name]))
            value.name = inputs[value.name]
    for value in proto.graph.output:
        if value.name in outputs:
            last.append(onnx.helper.make_node("Identity", [value.name],
                                                 [outputs[value.name]]))
            value.name = outputs[value.name]
    nodes = [*first, *proto.graph.node, *last]
    del proto.graph.node[:]
    proto.graph.node.extend(nodes)
    order = {name: i for i, name in enumerate(graph.outputs)}
    ordered = sorted(proto.graph.output, key=lambda v: order.get(v.name, len(order)))
    del proto.graph.output[:]
    proto.graph.output.extend(ordered)
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as error:
        # e.g. RoIAlign's broadcasts become TFL_BROADCAST_ARGS, which has no ONNX op.
        Path(path).unlink(missing_ok=True)
        reason = str(error).splitlines()[0][-160:]
        raise ValueError(f"tf2onnx cannot convert every op of {graph.model.name!r} to ONNX "
                         f"({reason}); export it as saved_model or tflite. Received: "
                         "format='onnx'") from error
    onnx.save(proto, os.fspath(path))
