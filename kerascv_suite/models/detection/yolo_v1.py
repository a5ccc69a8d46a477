"""YOLO v1 (Redmon et al. 2016): one network from the image to an S x S x (B*5 + C) grid."""

import keras

from kerascv_suite.models.common import finish_model, image_input
from kerascv_suite.models.detection.detection_output import YoloV1Decoder, YoloV1Output
from kerascv_suite.models.metadata import BOX_FORMAT, decoder_defaults, with_metadata
from kerascv_suite.models.registry import register_model

PAPER = (
    "J. Redmon, S. Divvala, R. Girshick, A. Farhadi. You Only Look Once: Unified, Real-Time "
    "Object Detection. CVPR 2016 (arXiv:1506.02640)."
)

# Figure 3 of the paper: (filters, kernel, stride) convolutions and "M" 2x2/2 max poolings.
# 24 convolutions; the 1x1 "reduction layers followed by 3x3 convolutional layers".
_R4 = ((256, 1, 1), (512, 3, 1)) * 4
_R2 = ((512, 1, 1), (1024, 3, 1)) * 2
BACKBONES = {
    "yolo": (
        (64, 7, 2), "M",
        (192, 3, 1), "M",
        (128, 1, 1), (256, 3, 1), (256, 1, 1), (512, 3, 1), "M",
        *_R4, (512, 1, 1), (1024, 3, 1), "M",
        *_R2, (1024, 3, 1), (1024, 3, 2),
        (1024, 3, 1), (1024, 3, 1),
    ),
    # A CPU-sized backbone in the spirit of the paper's Fast YOLO (sec. 2.4/4.1: "9
    # convolutional layers instead of 24 and fewer filters"): stride 32, 9 convolutions.
    "tiny": (
        (16, 3, 1), "M", (32, 3, 1), "M", (64, 3, 1), "M", (128, 3, 1), "M", (256, 3, 1), "M",
        (512, 3, 1), (256, 1, 1), (512, 3, 1), (256, 1, 1),
    ),
    # The tiny backbone without its fifth pooling (stride 16), so that a 112x112 input
    # gives a 7x7 map: one feature vector per grid cell, for `head="conv"`.
    "tiny_s16": (
        (16, 3, 1), "M", (32, 3, 1), "M", (64, 3, 1), "M", (128, 3, 1), "M", (256, 3, 1),
        (512, 3, 1), (256, 1, 1), (512, 3, 1), (256, 1, 1),
    ),
}  # fmt: skip
HEADS = ("dense", "conv")


def yolo_v1(
    num_classes=20,
    input_shape=(448, 448, 3),
    weights=None,
    preprocessing="unit",
    backbone="yolo",
    width=1.0,
    grid_size=7,
    num_boxes=2,
    fc_units=4096,
    dropout=0.5,
    batch_norm=False,
    head="dense",
    name=None,
):
    """Builds the YOLO v1 training model (raw grid output).

    Paper sec. 2.2: the convolutions of Fig. 3, a 4096-unit fully connected layer, dropout
    0.5, and a linear layer reshaped to `S x S x (B * 5 + C)`; every other layer uses a
    leaky ReLU (slope 0.1). Cell layout: `[x, y, sqrt(w), sqrt(h), confidence] * B`, then the
    C class probabilities (see `YoloV1Loss`). The fully connected head accepts any input
    size (448x448 in the paper). `detection.make_inference_model(model)` appends the
    decode + NMS (`YoloV1Decoder`) for the inference contract.

    Args:
        num_classes: C (20 for PASCAL VOC).
        input_shape: `(height, width, channels)`.
        weights: None, or a weights file / MLflow URI (see `load_weights`).
        preprocessing: `ImagePreprocessing` mode (darknet feeds [0, 1] pixels: `"unit"`).
        backbone: `"yolo"` (Fig. 3, 24 convolutions), `"tiny"` (9, for CPU training) or
            `"tiny_s16"` (the same at stride 16).
        width: multiplier of every convolution's filters.
        grid_size: S.
        num_boxes: B.
        fc_units: units of the hidden fully connected layer (4096).
        dropout: dropout after it (0.5).
        batch_norm: add BatchNormalization after each convolution (YOLO v2's addition;
            helps the small model train from scratch).
        head: `"dense"` (the paper's fully connected head) or `"conv"`, a CPU-training
            variant that is NOT the paper's: a 3x3 convolution of `fc_units` filters and a
            1x1 convolution to `B * 5 + C` on an `S x S` backbone map, so every cell
            shares the head's weights (the dense head must learn each cell on its own,
            which needs far more images than a CPU run sees). Requires the backbone's
            output to be `S x S` (e.g. `backbone="tiny_s16"` at 112x112 for S = 7).
        name: model name.

    Returns:
        A `keras.Model` mapping `(batch, height, width, 3)` RGB images in [0, 255] to
        `(batch, S, S, B * 5 + C)`. Its metadata (`models.describe`) holds the decoder's
        settings (darknet's thresholds, `num_boxes`, `num_classes`, `image_size`).
    """
    if backbone not in BACKBONES:
        raise ValueError(f"backbone must be one of {tuple(BACKBONES)}. "
                         f"Received: backbone={backbone!r}")
    if head not in HEADS:
        raise ValueError(f"head must be one of {HEADS}. Received: head={head!r}")
    if width <= 0:
        raise ValueError(f"width must be > 0. Received: width={width!r}")

    # === Backbone ===
    inputs, x = image_input(input_shape, preprocessing)
    conv, pool = 0, 0
    for entry in BACKBONES[backbone]:
        if entry == "M":
            pool += 1
            x = keras.layers.MaxPooling2D(2, strides=2, padding="same", name=f"pool{pool}")(x)
            continue
        conv += 1
        filters, kernel, stride = entry
        x = keras.layers.Conv2D(max(1, round(filters * width)), kernel, strides=stride,
                                padding="same", use_bias=not batch_norm, name=f"conv{conv}")(x)
        if batch_norm:
            x = keras.layers.BatchNormalization(name=f"conv{conv}_bn")(x)
        x = keras.layers.LeakyReLU(negative_slope=0.1, name=f"conv{conv}_leaky")(x)

    # === Head ===
    depth = num_boxes * 5 + num_classes
    if head == "conv":
        if tuple(x.shape[1:3]) != (grid_size, grid_size):
            raise ValueError(f"head='conv' needs a {grid_size}x{grid_size} backbone map; "
                             f"this input gives {tuple(x.shape[1:3])}. Received: "
                             f"input_shape={input_shape}, backbone={backbone!r}")
        x = keras.layers.Conv2D(fc_units, 3, padding="same", name="fc1")(x)
        x = keras.layers.LeakyReLU(negative_slope=0.1, name="fc1_leaky")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name="fc1_dropout")(x)
        x = keras.layers.Conv2D(depth, 1, name="predictions")(x)
        # Row-major (row, column, channel), the layout `YoloV1Output` reshapes back.
        x = keras.layers.Flatten(name="flatten")(x)
    else:
        x = keras.layers.Flatten(name="flatten")(x)
        x = keras.layers.Dense(fc_units, name="fc1")(x)
        x = keras.layers.LeakyReLU(negative_slope=0.1, name="fc1_leaky")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name="fc1_dropout")(x)
        x = keras.layers.Dense(grid_size * grid_size * depth, name="predictions")(x)
    x = YoloV1Output(grid_size, num_boxes, num_classes, name="yolo_output")(x)
    model = finish_model(inputs, x, name or f"yolo_v1_{backbone}", weights)
    return with_metadata(model, task="detection", preprocessing=preprocessing, decoder={
        "family": "yolo_v1", "box_format": BOX_FORMAT, **decoder_defaults(YoloV1Decoder),
        "num_classes": int(num_classes), "num_boxes": int(num_boxes),
        "grid_size": int(grid_size), "image_size": [int(d) for d in input_shape[:2]]})


# Parameters at 448x448, S=7, B=2, C=20, by hand from Fig. 3 (weights + biases):
#   conv1 7*7*3*64+64 = 9,472; conv2 3*3*64*192+192 = 110,784; conv3-6 24,704 + 295,168 +
#   65,792 + 1,180,160; conv7-14 4 * (131,328 + 1,180,160) = 5,245,952; conv15 262,656;
#   conv16 4,719,616; conv17-20 2 * (524,800 + 4,719,616) = 10,488,832; conv21-24
#   4 * 9,438,208 = 37,752,832 -> convolutions 60,155,968;
#   fc1 7*7*1024*4096+4096 = 205,524,992; predictions 4096*1470+1470 = 6,022,590
#   -> 271,703,550.
# Tiny at 224x224 with fc_units=512 and batch norm (4 BN weights per channel): convs
#   3*3*3*16 + 3*3*16*32 + 3*3*32*64 + 3*3*64*128 + 3*3*128*256 + 3*3*256*512 + 512*256
#   + 3*3*256*512 + 512*256 = 432 + 4,608 + 18,432 + 73,728 + 294,912 + 1,179,648 + 131,072
#   + 1,179,648 + 131,072 = 3,013,552; BN 4 * (16+32+64+128+256+512+256+512+256) = 8,128;
#   fc1 7*7*256*512+512 = 6,423,040; predictions 512*1470+1470 = 754,110 -> 10,198,830.
register_model(
    "yolo_v1",
    yolo_v1,
    task="detection",
    paper=PAPER,
    num_params=271_703_550,
    test_overrides={"input_shape": (64, 64, 3), "num_classes": 3, "width": 1 / 16,
                    "fc_units": 32},
)
register_model(
    "yolo_v1_tiny",
    yolo_v1,
    task="detection",
    paper=PAPER,
    num_params=10_198_830,
    test_overrides={"input_shape": (64, 64, 3), "num_classes": 3, "width": 0.25,
                    "fc_units": 32},
    backbone="tiny",
    input_shape=(224, 224, 3),
    fc_units=512,
    batch_norm=True,
)
