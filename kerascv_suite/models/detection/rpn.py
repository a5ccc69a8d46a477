"""The Region Proposal Network head and its training targets (Ren et al., "Faster R-CNN", 2015)."""

import keras
from keras import ops
from keras.utils import bounding_boxes

from kerascv_suite.bounding_box import BalancedPositiveNegativeSampler, BoxCoder, Matcher


@keras.saving.register_keras_serializable(package="kerascv_suite")
class RPNHead(keras.layers.Layer):
    """A 3x3 conv "sliding window" then sibling 1x1 objectness and box-regression convs.

    Ren et al. 2015, sec. 3.1 and Fig. 3: a 3x3 conv of 512 channels (VGG16) with ReLU,
    then a `cls` conv with one objectness logit per anchor (k = 9; torchvision's sigmoid
    form of the paper's 2k softmax) and a `reg` conv with 4k deltas. Initialized with
    N(0, 0.01) weights and zero biases as in the paper (sec. 3.1.3).

    Args:
        num_anchors: anchors per location (k).
        channels: channels of the 3x3 conv.

    Input: `(batch, height, width, channels)` features.
    Output: `(objectness (batch, h * w * k), deltas (batch, h * w * k, 4))`, ordered by row,
    column then anchor, as `rpn_anchors`.
    """

    def __init__(self, num_anchors=9, channels=512, **kwargs):
        super().__init__(**kwargs)
        self.num_anchors = int(num_anchors)
        self.channels = int(channels)
        init = keras.initializers.RandomNormal(stddev=0.01)
        self.conv = keras.layers.Conv2D(self.channels, 3, padding="same", activation="relu",
                                        kernel_initializer=init, name="rpn_conv")
        self.cls = keras.layers.Conv2D(self.num_anchors, 1, kernel_initializer=init,
                                       name="rpn_cls")
        self.reg = keras.layers.Conv2D(4 * self.num_anchors, 1, kernel_initializer=init,
                                       name="rpn_reg")

    def build(self, input_shape):
        self.conv.build(input_shape)
        shape = (*input_shape[:-1], self.channels)
        self.cls.build(shape)
        self.reg.build(shape)

    def call(self, features):
        x = self.conv(features)
        height, width = features.shape[1], features.shape[2]
        count = height * width * self.num_anchors
        return (ops.reshape(self.cls(x), (-1, count)),
                ops.reshape(self.reg(x), (-1, count, 4)))

    def compute_output_shape(self, input_shape):
        count = input_shape[1] * input_shape[2] * self.num_anchors
        return (input_shape[0], count), (input_shape[0], count, 4)

    def get_config(self):
        return {**super().get_config(), "num_anchors": self.num_anchors,
                "channels": self.channels}


def rpn_targets(anchors, gt_boxes, gt_valid, matcher=None, sampler=None, coder=None):
    """Labels and regression targets of the RPN's anchors.

    Ren et al. 2015, sec. 3.1.2-3.1.3: positive at IoU >= 0.7 with a ground-truth box (or
    the best anchor of a box), negative below 0.3, the rest ignored; 256 anchors sampled per
    image, up to half positive.

    Args:
        anchors: `(num_anchors, 4)`.
        gt_boxes: `(batch, N, 4)`; gt_valid `(batch, N)` bool.

    Returns:
        `(positive, negative, target_deltas)`: two `(batch, num_anchors)` bool masks of the
        sampled anchors and `(batch, num_anchors, 4)` deltas (weights 1, 1, 1, 1).
    """
    matcher = matcher or Matcher(0.7, 0.3, allow_low_quality_matches=True)
    sampler = sampler or BalancedPositiveNegativeSampler(256, 0.5)
    coder = coder or BoxCoder()
    batch = ops.shape(gt_boxes)[0]
    tiled = ops.broadcast_to(anchors[None], (batch, *anchors.shape))
    iou = bounding_boxes.compute_iou(tiled, gt_boxes, bounding_box_format="xyxy")
    matched, labels = matcher(iou, gt_valid)
    positive, negative = sampler(labels)
    matched_boxes = ops.take_along_axis(gt_boxes, matched[..., None], axis=1)
    targets = ops.where(positive[..., None], coder.encode(tiled, matched_boxes), 0.0)
    return positive, negative, ops.stop_gradient(targets)
