"""DecoupledNet: image-level classification, class-specific bridges, per-class deconvolution.

S. Hong, H. Noh, B. Han, "Decoupled Deep Neural Network for Semi-supervised Semantic
Segmentation", NIPS 2015 (arXiv:1506.04924). Section numbers below are those of the paper.

What is implemented:
- Classification network (sec. 4.1, trained as in sec. 5.1): VGG16's convolutions (Keras
  applications names) pooled with `MaxPoolingWithArgmax`, then fc6, fc7 (ReLU) and fc8 on the
  flattened last pooling, trained with image-level labels only: one sigmoid cross-entropy per
  foreground class present in the image (multi-label).
- Class-specific activation maps (sec. 4.3): the gradient of class score `y_l` with respect to
  the last pooled feature map `f_spat`, the saliency of Simonyan et al. that the paper uses.
  `ClassifierSaliency` computes it in closed form (back-propagation through fc8, the ReLU
  masks of fc7 and fc6, and fc6), so it is a plain forward op on every backend and exact
  (tests compare it with the backend's autodiff).
- Bridging layers (sec. 4.3): `f_spat` concatenated with the class-`l` map, turned by one
  layer into the class-specific input `g_l` of the segmentation network.
- Segmentation network (sec. 4.2): the deconvolution network of DeconvNet (unpooling with the
  classification network's switches, 3x3 transposed convolutions, Table 1 filters of
  `deconvnet.DECODER`), run once per class (the batch holds every (image, class) pair), ending
  in a figure-ground score per pixel: one logit (a sigmoid, equal to the paper's 2-way
  softmax).
- Training (sec. 5): the classification loss on every image; the segmentation loss (binary
  cross-entropy of each present class's figure-ground map, void pixels 255 left out) only on
  images whose mask is given (`y["masks"]` of an image without one is all 255). The
  classification network is fixed for the segmentation loss: `f_spat`, the switches and the
  maps enter the bridge through `stop_gradient`, so the two objectives stay decoupled.
- Inference (sec. 6): classes whose classifier probability reaches `class_threshold` are the
  identified ones; each keeps its figure-ground probability, the others get 0; a pixel's
  background score is `1 - max_l p_l`; the `(batch, height, width, num_classes)` output
  (background first, as every segmenter here) is normalized to sum to 1 per pixel, so its
  argmax is the identified class with the highest foreground probability above 0.5, else
  background.

Where this simplifies:
- One training stage, not two: both losses are summed in one `fit` (the stop-gradient above
  keeps the segmentation loss off the classifier, which the paper achieves by training it
  first and fixing it). No ImageNet initialisation by default (`backbone_weights` loads it).
- Batch normalization after every convolution (as DeconvNet, sec. 3.2.1 of Noh et al.), and
  no dropout in fc6/fc7 (small data).
- The bridge is a 3x3 convolution (+BN, ReLU) on the concatenation instead of the paper's
  fully connected bridging layer, so any pooled size works; the maps are scaled to [-1, 1]
  per (image, class) first, as gradients of different classes differ in scale.
- The segmentation network starts at the last pooling (no fc6/fc7 convolutions and deconv6
  of DeconvNet: the bridge's map is already the pooled map's shape).
- No "combinatorial cropping" augmentation of the few masks (sec. 5.2).
- Mask value 0 is background and `c` (1..num_classes-1) the class of classifier output `c - 1`.

Training through `keras.Model.fit` uses `DecoupledNet.compute_loss`: `y` a dict with `masks`
`(batch, height, width)` uint8 (255 = void / no mask) and `labels` `(batch, num_classes - 1)`
multi-hot. With any other `y` (a `(batch, height, width, num_classes)` target, e.g. the
registry's smoke test) the compiled loss applies to the segmentation output.
"""

import keras
from keras import ops

from kerascv_suite.layers.max_unpooling import MaxUnpooling
from kerascv_suite.models.common import check_head_args, image_input
from kerascv_suite.models.metadata import MetadataModel
from kerascv_suite.models.registry import register_model
from kerascv_suite.models.segmentation.common import static_size
from kerascv_suite.models.segmentation.deconvnet import DECODER
from kerascv_suite.models.segmentation.vgg_encoder import (
    conv_bn_relu,
    load_vgg16_backbone,
    scaled,
    vgg16_encoder,
)
from kerascv_suite.models.weights import load_weights

PAPER = (
    "S. Hong, H. Noh, B. Han. Decoupled Deep Neural Network for Semi-supervised Semantic "
    "Segmentation. NIPS 2015 (arXiv:1506.04924)."
)
IGNORE_INDEX = 255
HEAD_LAYERS = {"class_logits": "classifier", "mask_logits": "mask_logits"}


@keras.saving.register_keras_serializable(package="kerascv_suite")
class ClassifierSaliency(keras.layers.Layer):
    """fc6, fc7, fc8 on a flattened feature map, and each class score's gradient w.r.t. it.

    The gradient of `y_l = fc8(relu(fc7(relu(fc6(flatten(f))))))_l` with respect to `f` is
    `W6 (m6 * (W7 (m7 * W8[:, l])))`, with `m6`, `m7` the ReLU masks (1 where the
    pre-activation is positive): computed here in closed form for every class at once.

    Args:
        units: `(fc6, fc7)` sizes (4096, 4096 in VGG16).
        num_classes: classifier outputs (the foreground classes).

    Input shape: `(batch, h, w, c)`.
    Output: `[logits (batch, num_classes), saliency (batch, num_classes, h, w, c)]`.
    """

    def __init__(self, units=(4096, 4096), num_classes=20, **kwargs):
        super().__init__(**kwargs)
        self.units = tuple(int(u) for u in units)
        self.num_classes = int(num_classes)
        self.fc6 = keras.layers.Dense(self.units[0], name="fc6")
        self.fc7 = keras.layers.Dense(self.units[1], name="fc7")
        self.fc8 = keras.layers.Dense(self.num_classes, name="fc8")

    def build(self, input_shape):
        size = 1
        for dim in input_shape[1:]:
            size *= int(dim)
        self.fc6.build((None, size))
        self.fc7.build((None, self.units[0]))
        self.fc8.build((None, self.units[1]))

    def call(self, features):
        shape = ops.shape(features)
        flat = ops.reshape(features, (shape[0], -1))
        z6 = self.fc6(flat)
        z7 = self.fc7(ops.relu(z6))
        logits = self.fc8(ops.relu(z7))
        m6 = ops.cast(z6 > 0, z6.dtype)
        m7 = ops.cast(z7 > 0, z7.dtype)
        back7 = m7[:, None, :] * ops.transpose(self.fc8.kernel)[None]  # (B, K, fc7)
        back6 = ops.matmul(back7, ops.transpose(self.fc7.kernel)) * m6[:, None, :]
        saliency = ops.matmul(back6, ops.transpose(self.fc6.kernel))  # (B, K, h*w*c)
        saliency = ops.reshape(saliency, (shape[0], self.num_classes, *features.shape[1:]))
        return [logits, saliency]

    def compute_output_shape(self, input_shape):
        return [(input_shape[0], self.num_classes),
                (input_shape[0], self.num_classes, *input_shape[1:])]

    def get_config(self):
        return {**super().get_config(), "units": list(self.units),
                "num_classes": self.num_classes}


@keras.saving.register_keras_serializable(package="kerascv_suite")
class ClassBridgeInputs(keras.layers.Layer):
    """The per-class inputs of the bridge: `[f_spat, map_l]` for every (image, class) pair.

    Input: `[features (B, h, w, c), saliency (B, K, h, w, c)]`. Output:
    `(B * K, h, w, 2c)`, row `b * K + l` for image `b`, class `l`; each map scaled by its
    largest magnitude to [-1, 1]. Both enter through `stop_gradient` (the classification
    network is fixed for the segmentation loss).
    """

    def call(self, inputs):
        features, saliency = (ops.stop_gradient(t) for t in inputs)
        num_classes = saliency.shape[1]
        scale = ops.max(ops.abs(saliency), axis=(2, 3, 4), keepdims=True)
        saliency = saliency / ops.maximum(scale, 1e-12)
        saliency = ops.reshape(saliency, (-1, *saliency.shape[2:]))
        features = ops.repeat(features, num_classes, axis=0)
        return ops.concatenate([features, saliency], axis=-1)

    def compute_output_shape(self, input_shape):
        features, saliency = input_shape
        batch = None if features[0] is None else features[0] * saliency[1]
        return (batch, *features[1:3], 2 * features[3])


@keras.saving.register_keras_serializable(package="kerascv_suite")
class RepeatPerClass(keras.layers.Layer):
    """Repeats each batch row `repeats` times (`b -> b * repeats + l`), gradient-free: the
    classification network's switches and pooled inputs, for the per-class decoder."""

    def __init__(self, repeats, **kwargs):
        super().__init__(**kwargs)
        self.repeats = int(repeats)

    def call(self, x):
        return ops.repeat(ops.stop_gradient(x), self.repeats, axis=0)

    def compute_output_shape(self, input_shape):
        batch = None if input_shape[0] is None else input_shape[0] * self.repeats
        return (batch, *input_shape[1:])

    def get_config(self):
        return {**super().get_config(), "repeats": self.repeats}


@keras.saving.register_keras_serializable(package="kerascv_suite")
class PerClassMaps(keras.layers.Layer):
    """`(B * K, H, W, 1)` figure-ground logits -> `(B, H, W, K)`."""

    def __init__(self, num_classes, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)

    def call(self, x):
        x = ops.reshape(x, (-1, self.num_classes, *x.shape[1:3]))
        return ops.transpose(x, (0, 2, 3, 1))

    def compute_output_shape(self, input_shape):
        batch = None if input_shape[0] is None else input_shape[0] // self.num_classes
        return (batch, *input_shape[1:3], self.num_classes)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}


@keras.saving.register_keras_serializable(package="kerascv_suite")
class DecoupledScores(keras.layers.Layer):
    """Combines the classifier and the per-class maps into per-pixel class scores (sec. 6).

    Input: `[class_logits (B, K), mask_logits (B, H, W, K)]`. Output `(B, H, W, K + 1)`:
    channel 0 background `1 - max_l p_l`, channel `l + 1` `p_l = sigmoid(mask_logit_l)` for
    classes whose probability reaches `threshold` (0 for the others), normalized per pixel.
    """

    def __init__(self, threshold=0.5, **kwargs):
        super().__init__(**kwargs)
        self.threshold = float(threshold)

    def call(self, inputs):
        class_logits, mask_logits = inputs
        probability = ops.sigmoid(class_logits)
        present = ops.cast(probability >= self.threshold, mask_logits.dtype)
        # The gate's value is the hard threshold; its gradient passes straight through to
        # the classifier, so a loss on these scores (not the decoupled losses) reaches it.
        present = present + probability - ops.stop_gradient(probability)
        foreground = ops.sigmoid(mask_logits) * present[:, None, None, :]
        background = 1.0 - ops.max(foreground, axis=-1, keepdims=True)
        scores = ops.concatenate([background, foreground], axis=-1)
        return scores / ops.maximum(ops.sum(scores, axis=-1, keepdims=True), 1e-7)

    def compute_output_shape(self, input_shape):
        shape = input_shape[1]
        return (*shape[:3], shape[3] + 1)

    def get_config(self):
        return {**super().get_config(), "threshold": self.threshold}


def decoupled_loss(y, heads, mask_weight=1.0):
    """The two decoupled objectives (sec. 5): `(classification, segmentation)` scalars.

    Args:
        y: `{"masks": (B, H, W) class ids (255: void or no mask), "labels": (B, K)}`.
        heads: `{"class_logits": (B, K), "mask_logits": (B, H, W, K)}`.
        mask_weight: weight of the segmentation term.

    Returns:
        `(classification, segmentation)`: the mean sigmoid cross-entropy over images and
        classes; the binary cross-entropy over the non-void pixels of the (image, present
        class) pairs of images with a mask (0 when there are none in the batch).
    """
    labels = ops.cast(y["labels"], "float32")
    class_logits = ops.cast(heads["class_logits"], "float32")
    mask_logits = ops.cast(heads["mask_logits"], "float32")
    classification = ops.mean(ops.binary_crossentropy(labels, class_logits, from_logits=True))
    masks = ops.cast(y["masks"], "int32")
    if len(masks.shape) == 4:
        masks = masks[..., 0]
    num_classes = mask_logits.shape[-1]
    valid = ops.cast(ops.not_equal(masks, IGNORE_INDEX), "float32")[..., None]
    truth = ops.cast(ops.equal(masks[..., None], ops.arange(1, num_classes + 1, dtype="int32")),
                     "float32")
    weight = valid * labels[:, None, None, :]
    # Binary cross-entropy with logits, stable: max(x, 0) - x * z + log(1 + exp(-|x|)).
    bce = (ops.relu(mask_logits) - mask_logits * truth
           + ops.log1p(ops.exp(-ops.abs(mask_logits))))
    segmentation = ops.sum(bce * weight) / ops.maximum(ops.sum(weight), 1.0)
    return classification, mask_weight * segmentation


@keras.saving.register_keras_serializable(package="kerascv_suite")
class DecoupledNet(MetadataModel):
    """The functional DecoupledNet: `(B, H, W, 3)` images -> `(B, H, W, num_classes)` scores.

    `call(images, training=True)` returns the training heads (`heads`) as well, which
    `compute_loss` and `compute_metrics` read; predict and every other call return the
    segmentation scores, so the model (and its `.keras` file) is an ordinary segmenter.
    Built by `decouplednet`; revived from a `.keras` file by Keras' functional
    deserialization.
    """

    def __init__(self, *args, mask_weight=1.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.mask_weight = float(mask_weight)
        self.heads = keras.Model(self.inputs[0], {
            "segmentation": self.outputs[0],
            "class_logits": self.get_layer(HEAD_LAYERS["class_logits"]).output[0],
            "mask_logits": self.get_layer(HEAD_LAYERS["mask_logits"]).output,
        }, name=f"{self.name}_heads")

    def get_config(self):
        return {**super().get_config(), "mask_weight": self.mask_weight}

    def call(self, inputs, training=None, mask=None):
        if training:
            return self.heads(inputs, training=True)
        return super().call(inputs, training=training, mask=mask)

    @staticmethod
    def is_decoupled_target(y):
        return isinstance(y, dict) and {"masks", "labels"} <= set(y)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if not self.is_decoupled_target(y):
            seg = y_pred["segmentation"] if isinstance(y_pred, dict) else y_pred
            return super().compute_loss(x, y, seg, sample_weight, training)
        # Validation passes only have the scores: run the heads (inference mode) for them.
        heads = y_pred if isinstance(y_pred, dict) else self.heads(x, training=False)
        classification, segmentation = decoupled_loss(y, heads, self.mask_weight)
        loss = classification + segmentation
        for extra in self.losses:
            loss = loss + ops.cast(extra, loss.dtype)
        return loss

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        seg = y_pred["segmentation"] if isinstance(y_pred, dict) else y_pred
        if self.is_decoupled_target(y):
            y = y["masks"]
        return super().compute_metrics(x, y, seg, sample_weight)


def decouplednet(
    num_classes=21,
    input_shape=(224, 224, 3),
    weights=None,
    preprocessing="caffe",
    width=1.0,
    blocks=5,
    fc_units=(4096, 4096),
    class_threshold=0.5,
    mask_weight=1.0,
    backbone_weights=None,
    name="decouplednet",
):
    """Builds DecoupledNet (Hong, Noh, Han, NIPS 2015; see the module docstring).

    Args:
        num_classes: mask classes, background (0) included (21, PASCAL VOC, in the paper);
            the classifier predicts the `num_classes - 1` others.
        input_shape: `(height, width, 3)` with known height and width (224x224 in the paper).
        weights: None, or a weights file / MLflow URI (see `load_weights`).
        preprocessing: `ImagePreprocessing` mode; `"caffe"` is VGG16's.
        width: filter multiplier of the convolutions, the bridge and fc6/fc7 (1.0: the paper).
        blocks: VGG16 blocks of the classification network, each mirrored by an unpooling
            block of the segmentation network (5: the paper).
        fc_units: `(fc6, fc7)` sizes before `width` (4096, 4096: VGG16).
        class_threshold: classifier probability from which a class is identified (sec. 6).
        mask_weight: weight of the segmentation loss beside the classification loss.
        backbone_weights: keras.applications `VGG16(include_top=False)` weights for the
            classification network's convolutions (see `load_vgg16_backbone`).
        name: model name.

    Returns:
        A `DecoupledNet` mapping `(batch, height, width, 3)` RGB images in [0, 255] to
        `(batch, height, width, num_classes)` per-pixel class scores (background first).
    """
    check_head_args(True, num_classes, None)
    if int(num_classes) < 2:
        raise ValueError("DecoupledNet needs background and at least one class. "
                         f"Received: num_classes={num_classes}")
    static_size(input_shape, "DecoupledNet")
    foreground = int(num_classes) - 1

    # === Classification network (sec. 4.1) ===
    inputs, x = image_input(input_shape, preprocessing)
    pooled, skips = vgg16_encoder(x, width, batch_norm=True, argmax=True, blocks=blocks)
    class_logits, saliency = ClassifierSaliency(
        [scaled(u, width) for u in fc_units], foreground, name="classifier")(pooled)

    # === Bridging layers (sec. 4.3) ===
    x = ClassBridgeInputs(name="bridge_inputs")([pooled, saliency])
    x = conv_bn_relu(x, pooled.shape[-1], 3, "bridge", True)

    # === Segmentation network (sec. 4.2), once per class ===
    for block in range(blocks, 0, -1):
        skip = skips[block - 1]
        indices = RepeatPerClass(foreground, name=f"switches{block}")(skip["indices"])
        # The pooled input only gives the unpooled size (its batch size does not matter).
        x = MaxUnpooling(2, name=f"unpool{block}")([x, indices, skip["input"]])
        for index, filters in enumerate(DECODER[block], start=1):
            x = conv_bn_relu(x, scaled(filters, width), 3, f"deconv{block}_{index}", True,
                             transpose=True)  # fmt: skip
    x = keras.layers.Conv2D(1, 1, name="figure_ground")(x)
    mask_logits = PerClassMaps(foreground, name=HEAD_LAYERS["mask_logits"])(x)

    # === Inference (sec. 6) ===
    scores = DecoupledScores(class_threshold, name="predictions")([class_logits, mask_logits])
    model = load_weights(DecoupledNet(inputs, scores, name=name, mask_weight=mask_weight),
                         weights)
    return model if backbone_weights is None else load_vgg16_backbone(model, backbone_weights)


# Keras-counted parameters at the defaults (21 classes, 20 classifier outputs), by hand:
#   VGG16 convolutions 14,714,688 (keras.applications notop) + BN 4 * 4,224 = 16,896;
#   fc6 7*7*512*4096 + 4096 = 102,764,544; fc7 16,781,312; fc8 4096*20 + 20 = 81,940;
#   bridge 3*3*1024*512 + 512 = 4,719,104 + BN 2,048;
#   deconv5_1 ... deconv1_2 (DeconvNet's, Table 1) 14,749,376 + BN 15,104;
#   figure_ground 64 + 1 = 65.                              Total 153,845,077.
NUM_PARAMS = 153_845_077

register_model(
    "decouplednet",
    decouplednet,
    task="segmentation",
    paper=PAPER,
    num_params=NUM_PARAMS,
    test_overrides={"input_shape": (32, 32, 3), "num_classes": 3, "width": 0.0625,
                    "blocks": 2, "fc_units": (64, 64)},
)
