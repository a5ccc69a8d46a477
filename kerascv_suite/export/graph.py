"""The inference graph an export holds: a `tf.function` around the Keras inference model.

Detectors (`kind="detector"`): the model of the Keras inference path
(`models.detection.Detector(...).model`: preprocessing, decode and NMS inside) traced with
inputs `images (batch, H, W, 3)` float32 RGB 0..255 and, for Fast R-CNN and R-CNN,
`proposals (batch, P, 4)` xyxy input pixels, P fixed at export (selective search stays
outside the graph, as in the papers), and outputs `boxes (batch, N, 4)` xyxy input pixels,
`scores (batch, N)`, `classes (batch, N)` int32 (-1 padding), `num_detections (batch,)`
int32, and for Mask R-CNN (task "instance_segmentation") also `masks (batch, N, H, W)`
float32 in [0, 1], each detection's mask pasted into its box in input pixels (>= 0.5 is the
instance; zeros for padding rows). The batch is dynamic.

Segmenters with `argmax=True` (`kind="segmenter"`): `images` -> `masks (batch, H, W)` int32
class ids. Everything else is exported by Keras' own `model.export` (the head as it is).

Why one TensorFlow graph for all three formats: the project's NMS (`bounding_box.
batched_nms`, keras.ops) traces to plain TensorFlow ops (while loops, top-k, gathers), so the
SavedModel holds exactly the Keras inference path; TFLite converts it with builtin ops only
(no Flex delegate needed on device), and the ONNX file is converted from that TFLite
flatbuffer (tf2onnx's TFLite frontend), because tf2onnx's TensorFlow frontend loses the
shapes inside the NMS's `cond` branches and writes an invalid graph. `tf.image.
combined_non_max_suppression` would convert directly, but it is another NMS (other ties,
pre-NMS ranking and padding) and would not give the Keras model's detections.
"""

from __future__ import annotations

import dataclasses

CONTRACT_KEYS = ("boxes", "scores", "classes", "num_detections")
MASK_KEYS = (*CONTRACT_KEYS, "masks")


@dataclasses.dataclass
class ServingGraph:
    """A traced inference graph.

    Attributes:
        module: a `tf.Module` holding the Keras model (its variables) and `serve`.
        serve: the `tf.function` (keyword inputs -> dict of outputs).
        inputs: `{name: [dims]}` (None = dynamic).
        outputs: output names, in the order runtimes report them.
        model: the Keras model traced (carries the metadata to store).
        info: the `export` metadata entry: kind, inputs, outputs, settings baked in.
    """

    module: object
    serve: object
    inputs: dict
    outputs: tuple
    model: object
    info: dict


def export_kind(model, raw=False, argmax=False):
    """`"detector"`, `"segmenter"` (argmax inside) or `"model"` (Keras' own export)."""
    from kerascv_suite.models.detection.inference import is_detector
    from kerascv_suite.models.metadata import describe

    if not raw and is_detector(model):
        return "detector"
    if argmax:
        if describe(model)["task"] != "segmentation":
            raise ValueError("argmax exports a segmenter with its class map inside; this "
                             f"model's task is {describe(model)['task']!r}. Drop --argmax. "
                             f"Received: model={model.name!r}")
        return "segmenter"
    return "model"


def detector_graph(model, score_threshold=None, iou_threshold=None, max_detections=None,
                   num_proposals=300):
    """The `ServingGraph` of a detector of any family (see the module docstring), with these
    post-processing settings (None keeps the model's); Fast R-CNN and R-CNN graphs take
    `num_proposals` proposals per image (their RoI heads have a static RoI count; pad with
    zero boxes, as selective search's padding). A Mask R-CNN's graph also returns `masks`."""
    import tensorflow as tf

    from kerascv_suite.models.detection.inference import Detector
    from kerascv_suite.models.detection.mask_rcnn import is_instance_segmenter
    from kerascv_suite.models.metadata import describe

    detector = Detector(model, score_threshold=score_threshold, iou_threshold=iou_threshold,
                        max_detections=max_detections)
    keras_model = detector.model
    height, width = detector.input_size
    specs = [tf.TensorSpec((None, height, width, 3), tf.float32, name="images")]
    if detector.needs_proposals:
        specs.append(tf.TensorSpec((None, int(num_proposals), 4), tf.float32,
                                   name="proposals"))

    outputs = MASK_KEYS if is_instance_segmenter(model) else CONTRACT_KEYS

    def call(images, proposals=None):
        inputs = images if proposals is None else {"images": images, "proposals": proposals}
        out = keras_model(inputs, training=False)
        dtypes = {"classes": tf.int32, "num_detections": tf.int32}
        return {key: tf.cast(out[key], dtypes.get(key, tf.float32)) for key in outputs}

    serve = tf.function(call, input_signature=specs)
    module = tf.Module()
    module.model = keras_model
    module.serve = serve
    inputs = {"images": [None, height, width, 3]}
    if detector.needs_proposals:
        inputs["proposals"] = [None, int(num_proposals), 4]
    from kerascv_suite.models.detection.inference import DetectorInferenceModel
    from kerascv_suite.models.detection.rcnn import RCNN
    from kerascv_suite.models.detection.two_stage import TwoStageDetector

    region = isinstance(keras_model, (DetectorInferenceModel, RCNN, TwoStageDetector))
    info = {"kind": "detector", "region_based": region, "inputs": inputs,
            "outputs": list(outputs),
            "num_classes": detector.num_classes, "needs_proposals": detector.needs_proposals,
            "decoder": describe(keras_model)["decoder"]}
    return ServingGraph(module, serve, inputs, outputs, keras_model, info)


def segmenter_graph(model):
    """The `ServingGraph` of a segmenter with the argmax inside: `images` -> `masks`."""
    import tensorflow as tf

    shape = [None, *(None if d is None else int(d) for d in model.inputs[0].shape[1:])]
    spec = tf.TensorSpec(shape, tf.float32, name="images")

    def call(images):
        return {"masks": tf.argmax(model(images, training=False), axis=-1,
                                   output_type=tf.int32)}

    serve = tf.function(call, input_signature=[spec])
    module = tf.Module()
    module.model = model
    module.serve = serve
    info = {"kind": "segmenter", "inputs": {"images": shape}, "outputs": ["masks"],
            "num_classes": int(model.output_shape[-1])}
    return ServingGraph(module, serve, {"images": shape}, ("masks",), model, info)
