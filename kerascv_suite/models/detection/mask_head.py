"""The Mask R-CNN mask branch: its head, its training targets and mask pasting.

He, Gkioxari, Dollár, Girshick, "Mask R-CNN", ICCV 2017. Pure `keras.ops` with static
shapes, so the branch trains and exports on every backend.

Mask head (paper Fig. 4, right: "All convs are 3x3, except the output conv which is 1x1,
deconvs are 2x2 with stride 2, and we use ReLU in hidden layers"):

    RoIAlign 14 x 14 x C_in (sampling ratio 2)
    -> 4 x [3x3 conv 256 + ReLU]         14 x 14 x 256
    -> 2x2 deconv 256, stride 2 + ReLU   28 x 28 x 256
    -> 1x1 conv, K outputs               28 x 28 x K   (one mask per class, sigmoid)

Parameters (Keras counting, weights + biases) for C_in input channels and K classes:
`9 * C_in * 256 + 256` (first conv) `+ 3 * (9 * 256 * 256 + 256)` (= 1,770,240)
`+ 2 * 2 * 256 * 256 + 256` (deconv, 262,400) `+ 256 * K + K` (predictor). With VGG16's
C_in = 512 and K = 20 (PASCAL VOC): 1,179,904 + 1,770,240 + 262,400 + 5,140 = 3,217,684;
with ResNet-50 C4's C_in = 1024: 2,359,552 + 1,770,240 + 262,400 + 5,140 = 4,397,332.
"""

import keras
from keras import ops
from keras.utils import bounding_boxes

from kerascv_suite.layers.roi_align import RoIAlign


def mask_head_params(in_channels, num_classes, channels=256, num_convs=4):
    """Keras-counted parameters of a `MaskHead` (see the module docstring)."""
    convs = 9 * in_channels * channels + channels
    convs += (num_convs - 1) * (9 * channels * channels + channels)
    return convs + 4 * channels * channels + channels + channels * num_classes + num_classes


@keras.saving.register_keras_serializable(package="kerascv_suite")
class MaskHead(keras.layers.Layer):
    """RoIAlign, `num_convs` 3x3 convs, a 2x2 stride-2 deconv and a 1x1 conv to one mask
    logit map per class (He et al. 2017, Fig. 4).

    Layer names follow Detectron's (`mask_fcn1..4`, `conv5_mask`, `mask_fcn_logits`).
    Convs start from He-normal weights (Detectron's MSRA fill), the predictor from
    N(0, 0.001).

    Args:
        num_classes: real classes K (no background mask).
        pool_size: RoIAlign bins per side (14 in the paper); masks are `2 * pool_size`.
        spatial_scale: feature cells per input pixel (1/16 for stride-16 backbones).
        sampling_ratio: RoIAlign samples per bin along each axis (2 in the paper).
        channels: width of the convs and the deconv (256).
        num_convs: 3x3 convs before the deconv (4).

    Input: `[features (batch, h, w, C_in), rois (batch, R, 4)]`, rois xyxy input pixels.
    Output: `(batch, R, 2 * pool_size, 2 * pool_size, num_classes)` mask logits.

    Example:
        >>> head = MaskHead(20)  # after a VGG16 backbone: 3,217,684 parameters
        >>> logits = head([features, boxes])  # (batch, R, 28, 28, 20)
    """

    def __init__(self, num_classes, pool_size=14, spatial_scale=1.0 / 16, sampling_ratio=2,
                 channels=256, num_convs=4, **kwargs):
        super().__init__(**kwargs)
        if int(num_convs) < 1 or int(channels) < 1:
            raise ValueError("MaskHead needs at least one conv of at least one channel. "
                             f"Received: num_convs={num_convs}, channels={channels}")
        self.num_classes = int(num_classes)
        self.pool_size = int(pool_size)
        self.spatial_scale = float(spatial_scale)
        self.sampling_ratio = int(sampling_ratio)
        self.channels = int(channels)
        self.num_convs = int(num_convs)
        self.mask_size = 2 * self.pool_size
        self.roi_align = RoIAlign(self.pool_size, self.spatial_scale, self.sampling_ratio,
                                  name="mask_roi_align")
        self.convs = [keras.layers.Conv2D(self.channels, 3, padding="same", activation="relu",
                                          kernel_initializer="he_normal",
                                          name=f"mask_fcn{i + 1}")
                      for i in range(self.num_convs)]
        self.deconv = keras.layers.Conv2DTranspose(self.channels, 2, strides=2,
                                                   activation="relu",
                                                   kernel_initializer="he_normal",
                                                   name="conv5_mask")
        self.predictor = keras.layers.Conv2D(
            self.num_classes, 1, name="mask_fcn_logits",
            kernel_initializer=keras.initializers.RandomNormal(stddev=0.001))

    def build(self, input_shape):
        self.roi_align.build(input_shape)
        channels = input_shape[0][-1]
        for conv in self.convs:
            conv.build((None, self.pool_size, self.pool_size, channels))
            channels = self.channels
        self.deconv.build((None, self.pool_size, self.pool_size, channels))
        self.predictor.build((None, self.mask_size, self.mask_size, self.channels))

    def call(self, inputs, training=None):
        features, rois = inputs
        num_rois = rois.shape[1]
        x = self.roi_align([features, rois])
        x = ops.reshape(x, (-1, self.pool_size, self.pool_size, features.shape[-1]))
        for conv in self.convs:
            x = conv(x)
        x = self.predictor(self.deconv(x))
        return ops.reshape(x, (-1, num_rois, self.mask_size, self.mask_size,
                               self.num_classes))

    def compute_output_shape(self, input_shape):
        batch, rois = input_shape[1][0], input_shape[1][1]
        return (batch, rois, self.mask_size, self.mask_size, self.num_classes)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes,
                "pool_size": self.pool_size, "spatial_scale": self.spatial_scale,
                "sampling_ratio": self.sampling_ratio, "channels": self.channels,
                "num_convs": self.num_convs}


def class_masks(mask_logits, classes):
    """The mask of each RoI's class: `(batch, R, M, M)` from `(batch, R, M, M, K)` logits
    (or probabilities) and `(batch, R)` class ids 0..K-1 (negative ids read class 0)."""
    index = ops.maximum(ops.cast(classes, "int32"), 0)[:, :, None, None, None]
    return ops.take_along_axis(mask_logits, index, axis=-1)[..., 0]


def matched_gt(rois, gt_boxes, gt_valid):
    """`(batch, R)` index of the valid ground-truth box of highest IoU with each RoI (the
    `Matcher`'s match of a foreground RoI)."""
    iou = bounding_boxes.compute_iou(rois, gt_boxes, bounding_box_format="xyxy")
    iou = ops.where(gt_valid[:, None, :], iou, -1.0)
    return ops.argmax(iou, axis=-1)


def mask_targets(gt_masks, gt_boxes, gt_valid, rois, mask_size=28, sampling_ratio=2):
    """Mask R-CNN's mask targets (paper sec. 3, "the intersection between an RoI and its
    associated ground-truth mask"): each RoI's matched ground-truth instance mask,
    RoIAligned to `mask_size` x `mask_size` and thresholded at 0.5.

    RoIAlign on the mask uses pixel centres (`aligned=True`): pixel (i, j) of the mask is
    its value at (i + 0.5, j + 0.5), the convention `paste_masks` inverts.

    Args:
        gt_masks: `(batch, N, H, W)` 0/1 instance masks aligned with `gt_boxes`, in the
            input's pixels.
        gt_boxes, gt_valid: `(batch, N, 4)` xyxy, `(batch, N)` bool.
        rois: `(batch, R, 4)` xyxy input pixels.

    Returns:
        `(batch, R, mask_size, mask_size)` float32 0/1 targets (no gradient).
    """
    index = matched_gt(rois, gt_boxes, gt_valid)
    masks = ops.transpose(ops.cast(gt_masks, "float32"), (0, 2, 3, 1))  # (B, H, W, N)
    align = RoIAlign(mask_size, 1.0, sampling_ratio=sampling_ratio, aligned=True)
    crops = align([masks, ops.cast(rois, "float32")])  # (B, R, M, M, N)
    picked = ops.take_along_axis(crops, index[:, :, None, None, None], axis=-1)[..., 0]
    return ops.stop_gradient(ops.cast(picked >= 0.5, "float32"))


def _paste_weights(start, end, size, mask_size):
    """`(batch, N, size, mask_size)` bilinear weights of each image pixel centre over the
    mask cells of boxes spanning `[start, end)` along one axis; zero outside the box."""
    centres = ops.arange(size, dtype="float32") + 0.5  # (size,)
    length = ops.maximum(end - start, 1e-3)[..., None]
    position = (centres - start[..., None]) / length * mask_size - 0.5  # (b, n, size)
    inside = ops.logical_and(centres >= start[..., None], centres < end[..., None])
    position = ops.clip(position, 0.0, float(mask_size - 1))
    cells = ops.arange(mask_size, dtype="float32")
    weights = ops.relu(1.0 - ops.abs(position[..., None] - cells))
    return weights * ops.cast(inside, "float32")[..., None]


def paste_masks(masks, boxes, image_shape):
    """Pastes each box's `M x M` mask into the image (torchvision's
    `paste_masks_in_image`: a bilinear resize of the mask to the box).

    Args:
        masks: `(batch, N, M, M)` probabilities.
        boxes: `(batch, N, 4)` xyxy input pixels.
        image_shape: `(height, width)`.

    Returns:
        `(batch, N, height, width)`: the mask inside its box, 0 outside.
    """
    height, width = int(image_shape[0]), int(image_shape[1])
    mask_size = masks.shape[-1]
    boxes = ops.cast(boxes, "float32")
    wy = _paste_weights(boxes[..., 1], boxes[..., 3], height, mask_size)
    wx = _paste_weights(boxes[..., 0], boxes[..., 2], width, mask_size)
    rows = ops.einsum("bnhi,bnij->bnhj", wy, ops.cast(masks, "float32"))
    return ops.einsum("bnhj,bnwj->bnhw", rows, wx)
