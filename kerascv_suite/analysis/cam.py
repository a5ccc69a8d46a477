"""Class activation maps for networks with a global-average-pooling head.

Zhou, Khosla, Lapedriza, Oliva, Torralba, "Learning Deep Features for Discriminative
Localization", CVPR 2016. For a network that ends in global average pooling of the last
convolutional feature maps `f_k(x, y)` followed by a linear classifier with weights `w_k^c`,
the map of class `c` is `M_c(x, y) = sum_k w_k^c f_k(x, y)`: the class score before the
softmax is the spatial average of `M_c` (plus the bias). Networks whose last convolution
already has one channel per class and no linear layer after the pooling (NiN, SqueezeNet)
have `M_c = f_c`.

Everything runs through `keras.ops`, so it works on the tensorflow, jax and torch backends.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
from keras import ops

# Layers allowed between the pooling and the output: the classifier and what does not mix
# positions (the softmax, dropout at inference).
_PASS_THROUGH = (keras.layers.Activation, keras.layers.Dropout, keras.layers.Softmax)


@dataclasses.dataclass(frozen=True)
class CamHead:
    """Where a model's class activation maps come from.

    Attributes:
        features: the layer whose output `(batch, height, width, channels)` is pooled.
        pooling: the `GlobalAveragePooling2D` layer.
        classifier: the `Dense` layer after the pooling, or None when the feature channels
            are the classes (NiN, SqueezeNet).
    """

    features: keras.layers.Layer
    pooling: keras.layers.Layer
    classifier: keras.layers.Layer | None


def _producer(tensor):
    """The layer that produced a functional-graph tensor and that call's input tensors."""
    layer, node_index, _ = tensor._keras_history
    return layer, list(layer._inbound_nodes[node_index].input_tensors)


def find_cam_head(model):
    """Finds the global-average-pooling head of `model` (see `CamHead`).

    Walks back from the output through at most one `Dense` classifier and layers that act
    on each position alone (softmax, dropout) to a `GlobalAveragePooling2D`.

    Raises:
        ValueError: the model has no such head (VGG, AlexNet and LeNet flatten their feature
            maps into fully connected layers, which mixes positions).
    """
    if not getattr(model, "outputs", None) or len(model.outputs) != 1:
        raise ValueError(
            "Class activation maps need a functional model with one output. "
            f"Received: model={getattr(model, 'name', model)!r}"
        )
    tensor, classifier, seen = model.outputs[0], None, []
    while True:
        layer, inputs = _producer(tensor)
        seen.append(f"{layer.name} ({type(layer).__name__})")
        if isinstance(layer, keras.layers.GlobalAveragePooling2D) and not layer.keepdims:
            features, _ = _producer(inputs[0])
            return CamHead(features=features, pooling=layer, classifier=classifier)
        if isinstance(layer, keras.layers.Dense) and classifier is None:
            classifier = layer
        elif not isinstance(layer, _PASS_THROUGH):
            break
        if len(inputs) != 1:
            break
        tensor = inputs[0]
    raise ValueError(
        f"Model {model.name!r} has no global-average-pooling head: class activation maps "
        "(Zhou et al. 2016) need the last convolutional maps to be averaged and then "
        "classified linearly (ResNet, GoogLeNet, NiN, SqueezeNet). Walking back from the "
        f"output met {' <- '.join(seen)}."
    )


def _class_weights(head, class_index, num_classes):
    one_hot = ops.one_hot(class_index, num_classes, dtype="float32")
    if head.classifier is None:
        return one_hot  # (batch, channels): the channels are the classes
    kernel = ops.cast(head.classifier.kernel, "float32")  # (channels, classes)
    return ops.matmul(one_hot, ops.transpose(kernel))


def _probe(model):
    """The model's `CamHead` and a model `images -> (features, class scores)`: one forward
    pass gives both the maps and the prediction."""
    head = find_cam_head(model)
    return head, keras.Model(model.input, [head.features.output, model.outputs[0]])


def _explain_batch(head, probe, images, class_index):
    """Maps `(batch, height, width)` float32 in 0..1, the explained classes `(batch,)`
    int64 and the class scores `(batch, num_classes)` float32 of `images` (one call of
    `probe`)."""
    images = ops.convert_to_tensor(np.asarray(images, dtype="float32"))
    if len(images.shape) == 3:
        images = images[None]
    features, scores = probe(images, training=False)
    features = ops.cast(features, "float32")
    batch, num_classes = int(scores.shape[0]), int(scores.shape[-1])
    if class_index is None:
        class_index = ops.argmax(scores, axis=-1)
    else:
        class_index = np.broadcast_to(np.asarray(class_index, dtype="int32"), (batch,))
        if class_index.min() < 0 or class_index.max() >= num_classes:
            raise ValueError(
                f"class_index must be in [0, {num_classes}). Received: "
                f"class_index={class_index.tolist()}"
            )
    if head.classifier is None and int(features.shape[-1]) != num_classes:
        raise ValueError(
            f"The pooled maps of {head.features.name!r} have {features.shape[-1]} channels but "
            f"the model has {num_classes} classes, and no Dense classifier maps one to the other."
        )
    weights = _class_weights(head, class_index, num_classes)  # (batch, channels)
    maps = ops.einsum("bhwc,bc->bhw", features, weights)
    size = tuple(int(s) for s in images.shape[1:3])
    maps = ops.image.resize(maps[..., None], size, interpolation="bilinear")[..., 0]
    low = ops.min(maps, axis=(1, 2), keepdims=True)
    span = ops.max(maps, axis=(1, 2), keepdims=True) - low
    # A map that is constant up to rounding (e.g. a 1x1 feature map) carries no location.
    flat = span <= 1e-6 * ops.max(ops.abs(maps), axis=(1, 2), keepdims=True)
    maps = ops.where(flat, ops.zeros_like(maps), (maps - low) / ops.maximum(span, 1e-12))
    return (ops.convert_to_numpy(maps).astype("float32"),
            ops.convert_to_numpy(class_index).astype("int64"),
            ops.convert_to_numpy(ops.cast(scores, "float32")))


def class_activation_map(model, images, class_index=None, return_class_index=False):
    """Class activation maps of `images`, upsampled to the image size and scaled to 0..1.

    Args:
        model: a Keras functional model with a global-average-pooling head.
        images: `(batch, height, width, channels)` or one `(height, width, channels)`
            image, in the range the model takes (0..255 RGB for this project's models).
        class_index: the class to explain: None for each image's top prediction, an int
            for all images, or a sequence of one int per image.
        return_class_index: also return the explained class of each image.

    Returns:
        A float32 NumPy array `(batch, height, width)`, each map scaled to 0..1 (a map that
        is constant is all zeros), and with `return_class_index`, an int array `(batch,)`.

    Raises:
        ValueError: no global-average-pooling head, or a class index out of range.
    """
    head, probe = _probe(model)
    maps, explained, _ = _explain_batch(head, probe, images, class_index)
    if return_class_index:
        return maps, explained
    return maps


@dataclasses.dataclass
class CamResult:
    """One image explained by `explain_images`.

    Attributes:
        overlay: `(height, width, 3)` uint8 RGB: the map (JET, red = most evidence) blended
            over the image at the image's own size.
        cam: `(input_height, input_width)` float32 map in 0..1, at the model's input size.
        class_index: the explained class.
        score: the model's output for that class.
        top_class: the model's top class.
    """

    overlay: np.ndarray
    cam: np.ndarray
    class_index: int
    score: float
    top_class: int


def explain_images(model, images, class_index=None, alpha=0.5, batch_size=8):
    """Class activation map overlays of images of any size, with the model's prediction.

    Each image is resized (area interpolation) to the model's input, the inputs of up to
    `batch_size` images go through the model once (the maps and the class scores come from
    the same forward pass), and each map is blended over its original image.

    Args:
        model: a Keras functional model with a global-average-pooling head.
        images: an iterable of `(height, width, channels)` uint8 images (RGB, or gray for a
            one-channel model), read one at a time as results are taken.
        class_index: the class to explain: None for each image's top prediction, or an int.
        alpha: weight of the heatmap in the overlays.
        batch_size: images per forward pass. A model that takes any input size keeps each
            image's size, and a batch then holds consecutive images of one size.

    Returns:
        An iterator of one `CamResult` per image, in order.

    Raises:
        ValueError: no global-average-pooling head, or a class index out of range (raised
            by the call, before any image is read).
    """
    head, probe = _probe(model)
    num_classes = int(model.outputs[0].shape[-1])
    if class_index is not None and not 0 <= class_index < num_classes:
        raise ValueError(f"class_index must be in [0, {num_classes}). "
                         f"Received: class_index={class_index}")
    return _explain_stream(head, probe, model.inputs[0].shape[1:3], images, class_index,
                           alpha, int(batch_size))


def _explain_stream(head, probe, input_size, images, class_index, alpha, batch_size):
    """The iterator `explain_images` returns; `input_size` is the model's `(height, width)`
    (None where any size goes)."""
    import cv2

    height, width = input_size
    pending = []  # [(original, resized)]

    def flush():
        maps, explained, scores = _explain_batch(
            head, probe, np.stack([resized for _, resized in pending]), class_index)
        for (original, _), cam, k, row in zip(pending, maps, explained, scores):
            yield CamResult(overlay=overlay_heatmap(original, cam, alpha=alpha), cam=cam,
                            class_index=int(k), score=float(row[k]),
                            top_class=int(np.argmax(row)))
        pending.clear()

    for image in images:
        image = np.asarray(image, np.uint8)
        size = (width or image.shape[1], height or image.shape[0])
        resized = cv2.resize(image, size, interpolation=cv2.INTER_AREA).reshape(
            size[1], size[0], image.shape[-1])
        if pending and (len(pending) == batch_size or pending[0][1].shape != resized.shape):
            yield from flush()
        pending.append((image, resized))
    if pending:
        yield from flush()


def overlay_heatmap(image, cam, alpha=0.5):
    """Blends a 0..1 map over an RGB image with OpenCV's JET colormap (red = high).

    Args:
        image: uint8 `(height, width, 3)` RGB, or `(height, width, 1)` gray.
        cam: float `(h, w)` in 0..1; resized to the image.
        alpha: weight of the heatmap.

    Returns:
        uint8 `(height, width, 3)` RGB.
    """
    import cv2

    image = np.asarray(image, dtype=np.uint8)
    if image.ndim == 2 or image.shape[-1] == 1:
        image = np.repeat(image.reshape(*image.shape[:2], 1), 3, axis=-1)
    cam = cv2.resize(np.asarray(cam, np.float32), image.shape[1::-1], interpolation=cv2.INTER_LINEAR)
    heat = cv2.applyColorMap(np.uint8(np.clip(cam, 0, 1) * 255), cv2.COLORMAP_JET)
    heat = cv2.cvtColor(heat, cv2.COLOR_BGR2RGB)
    return cv2.addWeighted(heat, alpha, image, 1 - alpha, 0)
