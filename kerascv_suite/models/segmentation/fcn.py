"""Fully convolutional networks: FCN-32s, FCN-16s and FCN-8s on VGG16."""

import keras

from kerascv_suite.layers.bilinear_upsampling import bilinear_upsampling
from kerascv_suite.models.common import check_head_args, finish_model, global_pool, image_input
from kerascv_suite.models.registry import register_model
from kerascv_suite.models.segmentation.common import crop_to, segmentation_head, static_size
from kerascv_suite.models.segmentation.vgg_encoder import scaled, vgg16_encoder
from kerascv_suite.weights.backbone import check_backbone_args, load_backbone_weights

PAPER = (
    "J. Long, E. Shelhamer, T. Darrell. Fully Convolutional Networks for Semantic "
    "Segmentation. CVPR 2015 (arXiv:1411.4038)."
)
# Pooling outputs fused by each variant, coarsest first (paper section 4.2, Fig. 3).
VARIANTS = {"32s": (), "16s": (4,), "8s": (4, 3)}


def fcn(
    num_classes=21,
    input_shape=(224, 224, 3),
    include_top=True,
    weights=None,
    pooling=None,
    classifier_activation="softmax",
    preprocessing="caffe",
    variant="8s",
    width=1.0,
    dropout=0.5,
    backbone_weights=None,
    name=None,
):
    """Builds FCN-32s, FCN-16s or FCN-8s (Long, Shelhamer, Darrell, CVPR 2015).

    VGG16's 13 convolutions and 5 poolings (keras.applications names `block1_conv1` ...
    `block5_pool`), fc6 as a 7x7 convolution and fc7 as a 1x1 convolution (4096 filters,
    ReLU, dropout), a 1x1 `score_fr` layer, then upsampling: FCN-32s upsamples 32x at once;
    FCN-16s adds a 2x upsampling (`upscore2`) fused with `score_pool4`, a 1x1 scoring of
    `block4_pool` initialized to zero (section 4.2), then upsamples 16x; FCN-8s fuses
    `score_pool3` as well and upsamples 8x. Upsampling layers are `Conv2DTranspose`s
    initialized to bilinear interpolation; intermediate ones learn, the final one is fixed
    (section 4.2, "the final layer deconvolutional filters are fixed to bilinear
    interpolation").

    Instead of the reference implementation's 100-pixel input padding and "Crop" layers
    (which let fc6 see a 7x7 window on small inputs), fc6 uses "same" padding and poolings
    round up ("same"), so the score maps align with the input at the top-left and a final
    bottom/right crop returns exactly the input size. The parameters are the paper's.

    Args:
        num_classes: classes scored per pixel (21 for PASCAL VOC, the paper's setting).
        input_shape: `(height, width, 3)`, known height and width, any size >= 32.
        include_top: False returns fc7's `(batch, h/32, w/32, 4096 * width)` features,
            pooled by `pooling`.
        weights: None, or a weights file / MLflow URI (see `load_weights`).
        pooling: None, `"avg"` or `"max"`, used when `include_top=False`.
        classifier_activation: per-pixel activation (`"softmax"`), None for logits.
        preprocessing: `ImagePreprocessing` mode; `"caffe"` is VGG16's.
        variant: `"32s"`, `"16s"` or `"8s"`.
        width: multiplier of every VGG and fc filter count (e.g. 0.25 for a CPU recipe);
            1.0 is the paper's network, the only width VGG16 weights fit.
        dropout: rate after fc6 and fc7 (0.5 in the reference implementation).
        backbone_weights: None, `"imagenet"`, a vgg16 catalog entry (`vgg16.tv_in1k`) or a
            VGG16 weights file: the 13 convolutions copied by layer name and VGG16's fc1 /
            fc2 reshaped into the fc6 / fc7 convolutions (section 3.1), as the paper
            initializes FCN (`weights.backbone.load_backbone_weights`, mode `"conv"`);
            `width` must be 1 and `preprocessing` what the weights expect.
        name: model name, `"fcn8s"` etc. by default.

    Returns:
        A `keras.Model` mapping `(batch, height, width, 3)` RGB images in [0, 255] to
        `(batch, height, width, num_classes)` class probabilities.
    """
    check_head_args(include_top, num_classes, pooling)
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {tuple(VARIANTS)}. Received: variant={variant!r}")
    height, image_width = static_size(input_shape, "FCN")
    name = name or f"fcn{variant}"
    source = check_backbone_args(backbone_weights, "vgg16", name, preprocessing, width,
                                 weights)

    # === Encoder: VGG16 with fc6/fc7 as convolutions ===
    inputs, x = image_input(input_shape, preprocessing)
    x, skips = vgg16_encoder(x, width, pool_padding="same")
    for layer, kernel in (("fc6", 7), ("fc7", 1)):
        x = keras.layers.Conv2D(scaled(4096, width), kernel, padding="same", activation="relu",
                                name=layer)(x)  # fmt: skip
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"drop{layer[2:]}")(x)
    if not include_top:
        model = finish_model(inputs, global_pool(x, pooling), name, weights)
        return _with_backbone(model, source)

    # === Decoder: score, upsample, fuse ===
    score = keras.layers.Conv2D(num_classes, 1, name="score_fr")(x)
    stride = 32
    for step, block in enumerate(VARIANTS[variant]):
        skip = skips[block - 1]["pool"]
        up_name = "upscore2" if step == 0 else f"upscore_pool{block + 1}"
        up = bilinear_upsampling(num_classes, 2, name=up_name)(score)
        up = crop_to(up, skip.shape[1], skip.shape[2], f"{up_name}_crop")
        skip_score = keras.layers.Conv2D(num_classes, 1, kernel_initializer="zeros",
                                         name=f"score_pool{block}")(skip)  # fmt: skip
        score = keras.layers.Add(name=f"fuse_pool{block}")([up, skip_score])
        stride //= 2
    final = "upscore" if stride == 32 else f"upscore{stride}"
    x = bilinear_upsampling(num_classes, stride, trainable=False, name=final)(score)
    x = crop_to(x, height, image_width, "score_crop")
    x = segmentation_head(x, num_classes, classifier_activation)
    return _with_backbone(finish_model(inputs, x, name, weights), source)


def _with_backbone(model, source):
    if source is not None:
        load_backbone_weights(model, source, "vgg16", fc="conv")
    return model


# Keras-counted parameters at the defaults (21 classes), by hand:
#   VGG16 convolutions: 14,714,688 (keras.applications VGG16(include_top=False));
#   fc6 7*7*512*4096 + 4096 = 102,764,544; fc7 4096*4096 + 4096 = 16,781,312;
#   score_fr 4096*21 + 21 = 86,037. Sum 134,346,581 -- the paper's "134M" for FCN-VGG16
#   (Table 1). Upsampling kernels (no bias) k*k*21*21 with k = 2 * factor:
#   upscore (32x) 64*64*441 = 1,806,336; upscore16 32*32*441 = 451,584;
#   upscore8 16*16*441 = 112,896; upscore2 / upscore_pool4 4*4*441 = 7,056 each.
#   score_pool4 512*21 + 21 = 10,773; score_pool3 256*21 + 21 = 5,397.
#   fcn32s: 134,346,581 + 1,806,336 = 136,152,917
#   fcn16s: 134,346,581 + 7,056 + 10,773 + 451,584 = 134,815,994
#   fcn8s:  134,346,581 + 2 * 7,056 + 10,773 + 5,397 + 112,896 = 134,489,759
NUM_PARAMS = {"32s": 136_152_917, "16s": 134_815_994, "8s": 134_489_759}

for _variant, _params in NUM_PARAMS.items():
    register_model(
        f"fcn{_variant}",
        fcn,
        task="segmentation",
        paper=PAPER,
        num_params=_params,
        test_overrides={"input_shape": (32, 32, 3), "num_classes": 3, "width": 0.0625},
        variant=_variant,
    )
