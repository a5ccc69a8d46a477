"""Stacked Hourglass networks for keypoint heatmaps, and heatmap decoding."""

import keras
import numpy as np
from keras import ops

from kerascv_suite.models.common import check_head_args, finish_model, global_pool, image_input
from kerascv_suite.models.registry import register_model

PAPER = (
    "A. Newell, K. Yang, J. Deng. Stacked Hourglass Networks for Human Pose Estimation. "
    "ECCV 2016 (arXiv:1603.06937)."
)


def _bn_relu(x, name):
    x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    return keras.layers.Activation("relu", name=f"{name}_relu")(x)


def residual(x, filters, name):
    """The paper's residual module (Fig. 4 left): pre-activation bottleneck.

    BN-ReLU-1x1 conv (filters/2), BN-ReLU-3x3 conv (filters/2), BN-ReLU-1x1 conv
    (filters), added to the input, or to a 1x1 convolution of it when channels change
    (as in the authors' Torch `Residual.lua`).
    """
    y = keras.layers.Conv2D(filters // 2, 1, name=f"{name}_conv1")(_bn_relu(x, f"{name}_1"))
    y = keras.layers.Conv2D(filters // 2, 3, padding="same", name=f"{name}_conv2")(
        _bn_relu(y, f"{name}_2")
    )
    y = keras.layers.Conv2D(filters, 1, name=f"{name}_conv3")(_bn_relu(y, f"{name}_3"))
    if x.shape[-1] != filters:
        x = keras.layers.Conv2D(filters, 1, name=f"{name}_skip")(x)
    return keras.layers.Add(name=f"{name}_add")([x, y])


def hourglass_module(x, depth, filters, name):
    """One hourglass (Fig. 3): `depth` poolings down, nearest upsamplings back, with a
    residual branch kept at every resolution and added on the way up."""
    up = residual(x, filters, f"{name}_up{depth}")
    low = keras.layers.MaxPooling2D(2, strides=2, name=f"{name}_pool{depth}")(x)
    low = residual(low, filters, f"{name}_low{depth}_1")
    if depth > 1:
        low = hourglass_module(low, depth - 1, filters, name)
    else:
        low = residual(low, filters, f"{name}_low{depth}_2")
    low = residual(low, filters, f"{name}_low{depth}_3")
    low = keras.layers.UpSampling2D(2, name=f"{name}_upsample{depth}")(low)
    return keras.layers.Add(name=f"{name}_merge{depth}")([up, low])


def hourglass(
    num_classes=16,
    input_shape=(256, 256, 3),
    include_top=True,
    weights=None,
    pooling=None,
    classifier_activation=None,
    preprocessing="unit",
    num_stacks=2,
    filters=256,
    depth=4,
    name=None,
):
    """Builds a Stacked Hourglass network (Newell, Yang, Deng, ECCV 2016).

    Stem (section 3.1): 7x7 stride-2 convolution (64), a residual module to 128, 2x2 max
    pooling, residual modules to 128 and `filters`: 256x256 inputs become 64x64 features.
    Each stack is an hourglass of `depth` levels (4 in the paper), a residual module, a
    1x1 convolution with BN/ReLU and a 1x1 convolution to one heatmap per keypoint. Between
    stacks (Fig. 4 right) the features and the heatmaps, each remapped by a 1x1 convolution,
    are added to the stack's input. Every stack's heatmaps are an output, for intermediate
    supervision: the paper applies the same loss (MSE against Gaussian heatmaps) to each
    stack with equal weights, i.e. `compile(loss="mse")` or `loss_weights` of 1.0 for every
    key; use the last stack's heatmaps for prediction.

    Args:
        num_classes: number of keypoints, one heatmap channel each (16 for MPII).
        input_shape: `(height, width, channels)`; height and width multiples of
            `4 * 2**depth` (64 for depth 4).
        include_top: False returns the last stack's `(batch, h/4, w/4, filters)` features,
            pooled by `pooling`, instead of heatmaps.
        weights: None, or a weights file / MLflow URI (see `load_weights`).
        pooling: None, `"avg"` or `"max"`, used when `include_top=False`.
        classifier_activation: heatmap activation; None (linear, the paper) by default.
        preprocessing: `ImagePreprocessing` mode (`"unit"`: scale pixels to [0, 1]).
        num_stacks: number of hourglasses (8 in the paper; 2 by default for CPUs).
        filters: feature channels (256 in the paper).
        depth: poolings per hourglass (4 in the paper).
        name: model name, `"hourglass{num_stacks}"` by default.

    Returns:
        A `keras.Model` mapping `(batch, height, width, channels)` images in [0, 255] to a
        dict `{"heatmaps_1": ..., "heatmaps_{num_stacks}": ...}` of
        `(batch, height / 4, width / 4, num_classes)` heatmaps (the last is the prediction).
    """
    check_head_args(include_top, num_classes, pooling)
    if int(num_stacks) < 1 or int(depth) < 1:
        raise ValueError(
            "num_stacks and depth must be positive. "
            f"Received: num_stacks={num_stacks!r}, depth={depth!r}"
        )
    name = name or f"hourglass{num_stacks}"

    # === Stem: 4x downsampling ===
    inputs, x = image_input(input_shape, preprocessing)
    x = keras.layers.Conv2D(64, 7, strides=2, padding="same", name="stem_conv")(x)
    x = _bn_relu(x, "stem")
    x = residual(x, 128, "stem_res1")
    x = keras.layers.MaxPooling2D(2, strides=2, name="stem_pool")(x)
    x = residual(x, 128, "stem_res2")
    x = residual(x, filters, "stem_res3")

    # === Stacks with intermediate supervision ===
    outputs = {}
    for stack in range(1, num_stacks + 1):
        prefix = f"stack{stack}"
        features = hourglass_module(x, depth, filters, f"{prefix}_hg")
        features = residual(features, filters, f"{prefix}_res")
        features = keras.layers.Conv2D(filters, 1, name=f"{prefix}_lin")(features)
        features = _bn_relu(features, f"{prefix}_lin")
        if not include_top and stack == num_stacks:
            return finish_model(inputs, global_pool(features, pooling), name, weights)
        key = f"heatmaps_{stack}"
        heatmaps = keras.layers.Conv2D(
            num_classes, 1, activation=classifier_activation, name=key
        )(features)
        outputs[key] = heatmaps
        if stack < num_stacks:
            remap_features = keras.layers.Conv2D(filters, 1, name=f"{prefix}_remap_features")
            remap_heatmaps = keras.layers.Conv2D(filters, 1, name=f"{prefix}_remap_heatmaps")
            x = keras.layers.Add(name=f"{prefix}_merge")(
                [x, remap_features(features), remap_heatmaps(heatmaps)]
            )
    return finish_model(inputs, outputs, name, weights)


def decode_heatmaps(heatmaps, stride=1):
    """Keypoint coordinates from heatmaps: argmax plus a quarter-pixel shift.

    The single highest peak of `metrics.keypoints.decode_peaks` (the one decoder), in
    pixel-index coordinates: as in the authors' evaluation code, the maximum moves 0.25
    pixel towards the higher of its two neighbours along x and along y (no shift along an
    axis where it lies on the border). Decoding runs on the host (numpy), after prediction.

    Args:
        heatmaps: `(batch, height, width, num_keypoints)` array or tensor.
        stride: input pixels per heatmap pixel (4 for the hourglass). Coordinates map to the
            input with pixel centres aligned: `input = (heatmap + 0.5) * stride - 0.5`.

    Returns:
        `(coordinates, scores)`: float32 `(batch, num_keypoints, 2)` `(x, y)` pixel indices
        (centres at integers; `decode_peaks`' continuous coordinates minus 0.5) and the
        `(batch, num_keypoints)` maximum values, as numpy arrays.
    """
    from kerascv_suite.metrics.keypoints import decode_peaks

    coords, scores = decode_peaks(ops.convert_to_numpy(heatmaps), 1, stride=stride)
    return coords[:, :, 0] - np.float32(0.5), scores[:, :, 0]


# Keras-counted parameters at the defaults (2 stacks, 16 keypoints, 256 filters), by hand.
# Convolution k*k*in*out + out, BN 4 * channels.
#   Residual 256->256: BN 1,024 + 32,896 + BN 512 + 147,584 + BN 512 + 33,024 = 215,552.
#   Stem: conv 9,472 + BN 256; res 64->128 (with 1x1 skip) 58,496; res 128->128 54,528;
#     res 128->256 (with skip) 231,680: 354,432.
#   Hourglass of depth 4: 3 residuals per level + 1 at the bottom = 13 * 215,552
#     = 2,802,176. After it: residual 215,552 + lin 65,792 + BN 1,024 + heatmaps
#     256*16 + 16 = 4,112: 3,088,656 per stack.
#   Between stacks: remap_features 65,792 + remap_heatmaps 16*256 + 256 = 4,352.
#   Two stacks: 354,432 + 2 * 3,088,656 + 70,144 = 6,601,888.
NUM_PARAMS = 6_601_888

register_model(
    "hourglass",
    hourglass,
    task="keypoints",
    paper=PAPER,
    num_params=NUM_PARAMS,
    test_overrides={"input_shape": (32, 32, 3), "num_classes": 3, "filters": 16, "depth": 2},
)
