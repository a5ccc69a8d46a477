"""SSD300 / SSD512 (Liu et al. 2016): VGG16 + extra feature maps + per-map multibox heads."""

import keras

from kerascv_suite.bounding_box import SSD300, SSD512
from kerascv_suite.bounding_box.anchors import boxes_per_location
from kerascv_suite.layers.l2_normalization import L2Normalization
from kerascv_suite.models.classification.vgg import CONFIGS as VGG_CONFIGS
from kerascv_suite.models.classification.vgg import parse_conv
from kerascv_suite.models.common import finish_model, image_input
from kerascv_suite.models.detection.detection_output import SSDDecoder
from kerascv_suite.models.metadata import BOX_FORMAT, decoder_defaults, with_metadata
from kerascv_suite.models.registry import register_model
from kerascv_suite.weights.backbone import check_backbone_args, load_backbone_weights

PAPER = (
    "W. Liu, D. Anguelov, D. Erhan, C. Szegedy, S. Reed, C.-Y. Fu, A. C. Berg. SSD: Single "
    "Shot MultiBox Detector. ECCV 2016 (arXiv:1512.02325)."
)

# The extra feature layers after fc7 (paper Fig. 2; the reference Caffe ssd_pascal.py and
# ssd_pascal_512.py): (1x1 filters, 3x3/4x4 filters, kernel, stride, padding) per block,
# named conv8 .. conv12 as in the paper's figure.
CONFIGS = {
    "ssd300": {
        "default_boxes": SSD300,
        "extras": ((256, 512, 3, 2, 1), (128, 256, 3, 2, 1), (128, 256, 3, 1, 0),
                   (128, 256, 3, 1, 0)),
    },
    "ssd512": {
        "default_boxes": SSD512,
        "extras": ((256, 512, 3, 2, 1), (128, 256, 3, 2, 1), (128, 256, 3, 2, 1),
                   (128, 256, 3, 2, 1), (128, 256, 4, 1, 1)),
    },
}

# torchvision 0.28's ssd300_vgg16 (torchvision/models/detection/ssd.py), trained on COCO by
# torchvision's detection references: the network of SSD300 with other default boxes and
# preprocessing, so its weights convert exactly (weights.ssd_convert).
# - DefaultBoxGenerator: scales 0.07, 0.15, 0.33, 0.51, 0.69, 0.87 and 1.05 (s_{m+1}) of
#   the image (SSD512's Caffe scales), SSD300's ratios and steps, clip=True. Its clip clamps
#   each box's width and height to the image, not the box to the image; only conv11_2's
#   ratio-2 boxes change (261 * sqrt(2) = 369 px -> 300 px, centred on the image).
#   `ssd_default_boxes` has no such clamp, so ours keep 369 px and the converter folds the
#   difference into conv11_2's offset head (exactly: same centre, a fixed width ratio).
# - Box coder weights (10, 10, 5, 5) = our variances (0.1, 0.1, 0.2, 0.2); post-processing
#   score > 0.01, NMS IoU 0.45, 200 detections (the `SSDDecoder` defaults). torchvision keeps
#   the top 400 candidates per class (topk_candidates) where `SSDDecoder` keeps the top 400
#   (box, class) pairs of the image: the same detections whenever at most 400 pairs clear
#   the score threshold; otherwise the low-scoring tail can differ.
# - GeneralizedRCNNTransform: resize to 300 x 300 (no aspect kept), images in [0, 1] minus
#   image_mean (0.48235, 0.45882, 0.40784) divided by image_std 1/255, i.e. RGB pixels minus
#   (123, 117, 104), the Caffe SSD's mean in RGB order: the `"torchvision_ssd"` mode.
# - Classes: torchvision's 91 labels are COCO category ids (0 "__background__", 10 "N/A"
#   ids without a category). Ours are the same ids: num_classes=91 real class slots, so
#   class id = COCO category id = torchvision label and the names are the shipped coco91
#   list; our heads add the internal background in front (92 scores per box) and the
#   converter pins slot 0 ("__background__", never a detection) to a -1e4 logit.
TORCHVISION_SSD_SCALES = (0.07, 0.15, 0.33, 0.51, 0.69, 0.87, 1.05)
TORCHVISION_SSD_MEAN = (0.48235, 0.45882, 0.40784)
TORCHVISION_SSD_PREPROCESSING = "torchvision_ssd"
SSD300_COCO = {
    **SSD300,
    "min_sizes": tuple(round(300 * s, 6) for s in TORCHVISION_SSD_SCALES[:-1]),
    "max_sizes": tuple(round(300 * s, 6) for s in TORCHVISION_SSD_SCALES[1:]),
}
CONFIGS["ssd300_coco"] = {"default_boxes": SSD300_COCO, "extras": CONFIGS["ssd300"]["extras"]}


def ssd_input(input_shape, preprocessing):
    """`image_input`, plus the `"torchvision_ssd"` preprocessing of torchvision's SSD300
    (RGB pixels minus 255 * `TORCHVISION_SSD_MEAN`, a `Normalization` layer named
    `preprocessing`)."""
    if preprocessing != TORCHVISION_SSD_PREPROCESSING:
        return image_input(input_shape, preprocessing)
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    mean = [255.0 * m for m in TORCHVISION_SSD_MEAN]
    return inputs, keras.layers.Normalization(mean=mean, variance=[1.0, 1.0, 1.0],
                                              name="preprocessing")(inputs)


def ssd_default_box_config(config, image_size, feature_map_sizes):
    """`ssd_default_boxes` arguments of an SSD of any (square) input size.

    At the paper's size (300 or 512) this is `bounding_box.SSD300` / `SSD512` exactly; at
    other sizes, box sizes scale with the image, so boxes keep the same share of the image;
    the feature-map sizes are those of the built network, and each map's step is the
    paper's scaled so that its grid spans the same share of the image as the paper's grid
    (e.g. 38 x 8 = 304 px of 300): a 20-cell conv4_3 map of a 160 input gets a step of
    8 * (160 / 300) * (38 / 20) = 8.1 px, not 4.3 (which would leave its boxes on the
    image's top-left half).
    """
    base = CONFIGS[config]["default_boxes"]
    ratio = float(image_size) / base["image_size"]
    n = len(feature_map_sizes)  # fewer than the paper's maps with `extra_blocks`
    return {
        "image_size": int(image_size),
        "feature_map_sizes": tuple(int(s) for s in feature_map_sizes),
        "steps": tuple(s * ratio * paper / size for s, paper, size in zip(
            base["steps"], base["feature_map_sizes"], feature_map_sizes)),
        "min_sizes": tuple(s * ratio for s in base["min_sizes"][:n]),
        "max_sizes": tuple(s * ratio for s in base["max_sizes"][:n]),
        "aspect_ratios": base["aspect_ratios"][:n],
    }


def ssd(
    num_classes=20,
    input_shape=(300, 300, 3),
    weights=None,
    preprocessing="caffe",
    config="ssd300",
    width=1.0,
    batch_norm=False,
    extra_blocks=None,
    include_top=True,
    backbone_weights=None,
    name=None,
):
    """Builds the SSD training model (raw multibox outputs).

    Base: VGG16 conv1_1 .. conv5_3 with keras.applications' layer names (`block1_conv1` ..
    `block5_conv3`, so `load_vgg16_backbone` copies VGG16 ImageNet weights in), the
    poolings in Caffe's ceil mode (75 -> 38), pool5 3x3/1, fc6 as a 3x3 convolution with
    dilation 6 and fc7 as a 1x1 convolution (1024 each), conv4_3 L2-normalized with a learned
    scale initialized to 20 (sec. 3.1). Extra layers conv8_1 .. conv11_2 (conv12_2 on
    SSD512), then on each source map a 3x3 convolution for the offsets and one for the
    class scores of its default boxes (ratios {1, 2, 1/2} or {1, 2, 3, 1/2, 1/3}).
    `detection.make_inference_model(model)` appends the decode + NMS (`SSDDecoder`).

    Args:
        num_classes: real classes C; the heads predict C + 1 with background as class 0.
        input_shape: square `(size, size, channels)`; 300 / 512 in the paper, at least 257
            for SSD300's valid 3x3 conv10_2 / conv11_2.
        weights: None, or a weights file / MLflow URI (see `load_weights`).
        preprocessing: `ImagePreprocessing` mode (`"caffe"`, that of the VGG16 weights), or
            `"torchvision_ssd"` (torchvision's SSD300, see `ssd_input`).
        config: `"ssd300"`, `"ssd512"` or `"ssd300_coco"` (torchvision's SSD300 default
            boxes, see `SSD300_COCO`).
        width: multiplier of every filter count (1 in the paper; small for CPU training).
        batch_norm: batch normalization (Ioffe & Szegedy 2015) between every base and extra
            convolution and its ReLU (`<conv>_bn`, convolutions then without bias). Not in
            the paper, whose base starts from ImageNet VGG16 weights; it lets a narrow SSD
            train from scratch (DSOD, Shen et al. 2017, makes the same point).
        extra_blocks: how many of the extra blocks (conv8 ..) to build and predict from;
            None builds all (4 on SSD300). Fewer blocks drop the coarsest maps, so a
            smaller input (e.g. 160 with 3 blocks: maps 20, 10, 5, 3, 1) still builds; the
            remaining maps keep the paper's default-box settings (`ssd_default_box_config`
            reads the map count back). SSD300 only.
        include_top: False leaves out the multibox heads: the model then returns the list
            of source feature maps (conv4_3_norm, fc7, conv8_2 ..), e.g. for another head.
        backbone_weights: None, `"imagenet"`, a vgg16 catalog entry (`vgg16.tv_in1k`) or a
            VGG16 weights file: the base's 13 convolutions and the paper's reduced fc6 / fc7
            subsampled from VGG16's fc1 / fc2 (sec. 3, see `load_vgg16_backbone`); `width`
            must be 1 and `preprocessing` what the weights expect.
        name: model name.

    Returns:
        A `keras.Model` mapping `(batch, size, size, 3)` RGB images in [0, 255] to
        `(batch, num_default_boxes, 4 + C + 1)`: per default box, the 4 encoded offsets
        then the C + 1 class logits, in the order of `bounding_box.ssd_default_boxes`
        (8,732 boxes for SSD300, 24,564 for SSD512). Its metadata (`models.describe`)
        holds the decoder's settings: the paper's thresholds, `num_classes`, `config` and
        the `default_boxes` of this network's feature maps.
    """
    if config not in CONFIGS:
        raise ValueError(f"config must be one of {tuple(CONFIGS)}. Received: config={config!r}")
    if input_shape[0] != input_shape[1]:
        raise ValueError(f"SSD takes square inputs. Received: input_shape={input_shape}")
    if width <= 0:
        raise ValueError(f"width must be > 0. Received: width={width!r}")
    backbone_source = check_backbone_args(backbone_weights, "vgg16", name or config,
                                          preprocessing, width, weights)
    filters = lambda n: max(1, round(n * width))
    spec = CONFIGS[config]
    ratios = spec["default_boxes"]["aspect_ratios"]
    extras = spec["extras"]
    if extra_blocks is not None:
        if config != "ssd300" or not 1 <= extra_blocks <= len(extras):
            raise ValueError(f"extra_blocks must lie in 1..{len(CONFIGS['ssd300']['extras'])} "
                             f"on ssd300. Received: extra_blocks={extra_blocks!r}, "
                             f"config={config!r}")
        extras = extras[:extra_blocks]

    def conv(x, n, kernel, name, **kwargs):
        if not batch_norm:
            return keras.layers.Conv2D(n, kernel, activation="relu", name=name, **kwargs)(x)
        x = keras.layers.Conv2D(n, kernel, use_bias=False, name=name, **kwargs)(x)
        # momentum 0.9 (PyTorch's 0.1): moving statistics that settle within a short
        # CPU run, so validation in inference mode sees what training sees.
        x = keras.layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
        return keras.layers.Activation("relu", name=f"{name}_relu")(x)

    # === VGG16 base ===
    inputs, x = ssd_input(input_shape, preprocessing)
    sources = []
    for block, entries in enumerate(VGG_CONFIGS["D"], start=1):
        for index, entry in enumerate(entries, start=1):
            n, kernel = parse_conv(entry)
            x = conv(x, filters(n), kernel, f"block{block}_conv{index}", padding="same")
        if block == 4:
            sources.append(L2Normalization(20.0, name="conv4_3_norm")(x))
        if block < 5:
            x = keras.layers.MaxPooling2D(2, strides=2, padding="same",
                                          name=f"block{block}_pool")(x)
    x = keras.layers.MaxPooling2D(3, strides=1, padding="same", name="block5_pool")(x)
    x = conv(x, filters(1024), 3, "fc6", dilation_rate=6, padding="same")
    x = conv(x, filters(1024), 1, "fc7")
    sources.append(x)

    # === Extra feature layers ===
    for index, (reduce, out, kernel, stride, pad) in enumerate(extras, start=8):
        x = conv(x, filters(reduce), 1, f"conv{index}_1")
        if pad:
            x = keras.layers.ZeroPadding2D(pad, name=f"conv{index}_2_pad")(x)
        if x.shape[1] < kernel:
            raise ValueError(f"input_shape {input_shape} leaves a {x.shape[1]}x{x.shape[2]} "
                             f"map before conv{index}_2 ({kernel}x{kernel}); use a larger "
                             f"input or fewer extra_blocks. Received: input_shape={input_shape}")
        x = conv(x, filters(out), kernel, f"conv{index}_2", strides=stride)
        sources.append(x)
    if not include_top:
        return _with_backbone(finish_model(inputs, sources, name or config, weights),
                              backbone_source)

    # === Multibox heads ===
    locs, confs = [], []
    for source, per_location in zip(sources, boxes_per_location(ratios)):
        prefix = _source_name(source)
        size = source.shape[1] * source.shape[2] * per_location
        loc = keras.layers.Conv2D(per_location * 4, 3, padding="same",
                                  name=f"{prefix}_mbox_loc")(source)
        conf = keras.layers.Conv2D(per_location * (num_classes + 1), 3, padding="same",
                                   name=f"{prefix}_mbox_conf")(source)
        locs.append(keras.layers.Reshape((size, 4), name=f"{prefix}_mbox_loc_flat")(loc))
        confs.append(keras.layers.Reshape((size, num_classes + 1),
                                          name=f"{prefix}_mbox_conf_flat")(conf))
    loc = keras.layers.Concatenate(axis=1, name="mbox_loc")(locs)
    conf = keras.layers.Concatenate(axis=1, name="mbox_conf")(confs)
    outputs = keras.layers.Concatenate(axis=-1, name="mbox_predictions")([loc, conf])
    model = _with_backbone(finish_model(inputs, outputs, name or config, weights),
                           backbone_source)
    default_boxes = ssd_default_box_config(config, input_shape[0],
                                           [source.shape[1] for source in sources])
    return with_metadata(model, task="detection", preprocessing=preprocessing, decoder={
        "family": "ssd", "box_format": BOX_FORMAT, **decoder_defaults(SSDDecoder),
        "num_classes": int(num_classes), "config": config, "default_boxes": default_boxes})


def _source_name(tensor):
    # The producing layer's name: conv4_3_norm, fc7, conv8_2, ... (without batch_norm's
    # "_relu" suffix).
    return tensor._keras_history[0].name.removesuffix("_relu")


def load_vgg16_backbone(model, weights):
    """Copies ImageNet VGG16 weights into an SSD model of width 1, in place.

    The 13 base convolutions (`block*_conv*`) are copied by name; fc6 / fc7 take the paper's
    reduced fc6 / fc7 (sec. 3): VGG16's fc1 `(7*7*512, 4096)` as a 7x7 kernel, every 3rd
    tap and every 4th filter -> the dilated `(3, 3, 512, 1024)` conv6, and fc2's every 4th
    input and output -> `(1, 1, 1024, 1024)`. A source without fc1 / fc2 (a `_notop` file)
    leaves fc6 / fc7 as initialized (one warning line).

    Args:
        model: an SSD model of width 1 without batch norm.
        weights: `"imagenet"`, a vgg16 catalog entry, or a VGG16 weights file (see
            `kerascv_suite.weights.backbone`).

    Returns:
        `model`.
    """
    load_backbone_weights(model, weights, "vgg16", fc="reduced")
    return model


def _with_backbone(model, source):
    return model if source is None else load_vgg16_backbone(model, source)


# Parameters of SSD300 with 21 classes (VOC + background), by hand (weights + biases):
#   VGG16 convolutions 14,714,688 (keras.applications VGG16 include_top=False);
#   fc6 3*3*512*1024+1024 = 4,719,616; fc7 1024*1024+1024 = 1,049,600; conv4_3_norm 512;
#   conv8 262,400 + 1,180,160; conv9 65,664 + 295,168; conv10 and conv11 32,896 + 295,168
#   each -> extras 2,459,520;
#   loc heads 3*3*C_in*4*k + 4*k for (C_in, k) = (512,4), (1024,6), (512,6), (256,6),
#   (256,4), (256,4): 73,744 + 221,208 + 110,616 + 55,320 + 36,880 + 36,880 = 534,648;
#   conf heads with 21 classes: 387,156 + 1,161,342 + 580,734 + 290,430 + 193,620 + 193,620
#   = 2,806,902 -> 26,285,486, the count reported for the reference SSD300 ports
#   (e.g. amdegroot/ssd.pytorch with num_classes=21, which has the same layers).
# SSD512, the same way: extras add conv12 (32,896 + 4*4*128*256+256 = 524,544) -> 3,016,960;
#   7 maps with (C_in, k) = (512,4), (1024,6), (512,6), (256,6), (256,6), (256,4), (256,4):
#   loc 589,968, conf 3,097,332; with the base 20,484,416 -> 27,188,676.
# ssd300_tiny (width 1/8: 64 -> 8 ... 1024 -> 128 filters, 21 classes): VGG convolutions
#   224 + 584 + 1,168 + 2,320 + 4,640 + 2*9,248 + 18,496 + 2*36,928 + 3*36,928 = 230,568;
#   fc6 73,856; fc7 16,512; L2Norm 64; extras 4,128 + 18,496 + 1,040 + 4,640 + 2*(528 +
#   4,640) = 38,640; loc heads 9,232 + 27,672 + 13,848 + 6,936 + 2*4,624 = 66,936; conf
#   heads 48,468 + 145,278 + 72,702 + 36,414 + 2*24,276 = 351,414 -> 777,990.
register_model(
    "ssd300",
    ssd,
    task="detection",
    paper=PAPER,
    num_params=26_285_486,
    test_overrides={"input_shape": (260, 260, 3), "num_classes": 3, "width": 1 / 16},
)
register_model(
    "ssd512",
    ssd,
    task="detection",
    paper=PAPER,
    num_params=27_188_676,
    test_overrides={"input_shape": (260, 260, 3), "num_classes": 3, "width": 1 / 16},
    config="ssd512",
    input_shape=(512, 512, 3),
)
register_model(
    "ssd300_tiny",
    ssd,
    task="detection",
    paper=PAPER,
    num_params=777_990,
    test_overrides={"input_shape": (260, 260, 3), "num_classes": 3, "width": 1 / 16},
    width=0.125,
)
# ssd300_coco (torchvision's ssd300_vgg16 layout, 91 COCO id slots + background = 92 scores
# per box): torchvision's meta num_params 35,641,826 (its 91 scores per box, the L2Norm scale
# included) plus our slot 0 on each conf head, k * (9 * C_in + 1) for (C_in, k) above:
# 18,436 + 55,302 + 27,654 + 13,830 + 9,220 + 9,220 = 133,662 -> 35,775,488.
register_model(
    "ssd300_coco",
    ssd,
    task="detection",
    paper=f"{PAPER} Default boxes and weights: torchvision 0.28 ssd300_vgg16 (COCO).",
    num_params=35_775_488,
    test_overrides={"input_shape": (260, 260, 3), "num_classes": 3, "width": 1 / 16},
    config="ssd300_coco",
    num_classes=91,
    preprocessing=TORCHVISION_SSD_PREPROCESSING,
)
