"""ResNet, SE-ResNet and A^2-ResNet: one builder, variants as data.

He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", CVPR 2016 (Table 1).
The graph, layer names, BN epsilon and convolution biases follow keras.applications'
`resnet.py` (ResNet50/101/152), so its weight files load as they are. The `*_v1_5` variants
are torchvision's `resnet50/101/152` layout (the stride on each strided bottleneck's 3x3
convolution, no convolution biases, BN epsilon 1e-5), so torchvision's checkpoints map onto
them exactly (`kerascv_suite.weights`, layout "resnet").
"""

import keras

from kerascv_suite.layers.double_attention import DoubleAttention
from kerascv_suite.layers.residual_blocks import (
    BN_EPSILON,
    EXPANSION,
    STRIDE_PLACEMENTS,
    apply_residual_block,
    residual_block_layers,
)
from kerascv_suite.models.common import check_head_args, finish_model, global_pool, image_input
from kerascv_suite.models.registry import register_model

STAGE_FILTERS = (64, 128, 256, 512)
STAGE_NAMES = ("conv2", "conv3", "conv4", "conv5")

RESNET_PAPER = (
    "He, Zhang, Ren, Sun, 'Deep Residual Learning for Image Recognition', CVPR 2016"
)
SE_PAPER = "Hu, Shen, Sun, 'Squeeze-and-Excitation Networks', CVPR 2018"
A2_PAPER = (
    "Chen, Kalantidis, Li, Yan, Feng, 'A^2-Nets: Double Attention Networks', NeurIPS 2018"
)
V1_5_PAPER = (
    f"{RESNET_PAPER}; stride on the 3x3 convolution ('ResNet v1.5') as torchvision 0.28 "
    "torchvision/models/resnet.py Bottleneck, after Goyal et al., 'Accurate, Large Minibatch "
    "SGD: Training ImageNet in 1 Hour', arXiv:1706.02677, 2017"
)
# torchvision's BatchNorm2d default (torch.nn.BatchNorm2d eps=1e-05).
TORCHVISION_BN_EPSILON = 1e-5


def resnet(
    stack_sizes=(3, 4, 6, 3),
    block="bottleneck",
    se_ratio=None,
    a2_after=(),
    a2_reduction=2,
    stride_on="1x1",
    use_bias=True,
    bn_epsilon=BN_EPSILON,
    num_classes=1000,
    input_shape=(224, 224, 3),
    include_top=True,
    weights=None,
    pooling=None,
    classifier_activation="softmax",
    preprocessing="caffe",
    name=None,
):
    """Builds a ResNet (v1) classifier or backbone.

    Args:
        stack_sizes: residual blocks in conv2..conv5 (Table 1: `(3, 4, 6, 3)` for 50 layers).
        block: `"basic"` (ResNet-18/34) or `"bottleneck"` (ResNet-50/101/152).
        se_ratio: if set, every block gets a Squeeze-and-Excitation block with this
            reduction ratio on its residual branch (SE-ResNet).
        a2_after: names of blocks (e.g. `"conv3_block2"`) after whose output a
            `DoubleAttention` block named `{block}_a2` is inserted.
        a2_reduction: `c_m = c_n = channels // a2_reduction` for those blocks.
        stride_on: where a strided bottleneck strides: `"1x1"` (the paper and
            keras.applications) or `"3x3"` (torchvision's "v1.5"; the 3x3 is padded by one
            pixel on every side as torchvision's).
        use_bias: biases on the convolutions (keras.applications has them, torchvision not).
        bn_epsilon: BatchNormalization epsilon (keras.applications' 1.001e-5; torchvision's
            1e-5).
        num_classes: classes of the top layer (`include_top=True`).
        input_shape: `(height, width, 3)`; at least 32x32.
        include_top: whether to end with global average pooling and the `predictions` layer.
        weights: None, a local weights file (keras.applications' ResNet50/101/152 `.h5` or
            `.weights.h5` files load as they are) or an MLflow model URI.
        pooling: `None`, `"avg"` or `"max"`, used when `include_top=False`.
        classifier_activation: activation of `predictions`; None returns logits.
        preprocessing: in-model preprocessing mode; `"caffe"` as keras.applications' ResNet.
        name: model name; None derives it from the configuration (`resnet50`,
            `se_resnet50`, `a2_resnet50`, ...).

    Returns:
        A `keras.Model` mapping `(batch, height, width, 3)` RGB images in [0, 255] to
        `(batch, num_classes)` probabilities, or to features when `include_top=False`.
    """
    check_head_args(include_top, num_classes, pooling)
    if block not in EXPANSION:
        raise ValueError(f"block must be one of {tuple(EXPANSION)}. Received: block={block!r}")
    if len(stack_sizes) != len(STAGE_NAMES) or min(stack_sizes) < 1:
        raise ValueError(
            "stack_sizes must give a positive number of blocks for each of conv2..conv5. "
            f"Received: stack_sizes={stack_sizes!r}"
        )
    known_blocks = {
        f"{stage}_block{i}"
        for stage, blocks in zip(STAGE_NAMES, stack_sizes)
        for i in range(1, blocks + 1)
    }
    if stride_on not in STRIDE_PLACEMENTS:
        raise ValueError(
            f"stride_on must be one of {STRIDE_PLACEMENTS}. Received: stride_on={stride_on!r}"
        )
    unknown = sorted(set(a2_after) - known_blocks)
    if unknown:
        raise ValueError(
            f"a2_after names blocks this ResNet does not have: {unknown}. "
            f"Received: a2_after={tuple(a2_after)!r}"
        )

    if name is None:
        depth = sum(stack_sizes) * (3 if block == "bottleneck" else 2) + 2
        prefix = ("se_" if se_ratio else "") + ("a2_" if a2_after else "")
        suffix = "_v1_5" if stride_on == "3x3" and block == "bottleneck" else ""
        name = f"{prefix}resnet{depth}{suffix}"

    inputs, x = image_input(input_shape, preprocessing)
    x = keras.layers.ZeroPadding2D(padding=3, name="conv1_pad")(x)
    x = keras.layers.Conv2D(64, 7, strides=2, use_bias=use_bias, name="conv1_conv")(x)
    x = keras.layers.BatchNormalization(axis=-1, epsilon=bn_epsilon, name="conv1_bn")(x)
    x = keras.layers.Activation("relu", name="conv1_relu")(x)
    x = keras.layers.ZeroPadding2D(padding=1, name="pool1_pad")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)

    for stage, filters, blocks in zip(STAGE_NAMES, STAGE_FILTERS, stack_sizes):
        for i in range(1, blocks + 1):
            block_name = f"{stage}_block{i}"
            stride = 2 if i == 1 and stage != "conv2" else 1
            layers = residual_block_layers(
                block, filters, x.shape[-1], stride=stride, se_ratio=se_ratio,
                use_bias=use_bias, epsilon=bn_epsilon, stride_on=stride_on, name=block_name,
            )  # fmt: skip
            x = apply_residual_block(layers, x)
            if block_name in a2_after:
                x = DoubleAttention(reduction=a2_reduction, name=f"{block_name}_a2")(x)

    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = keras.layers.Dense(num_classes, activation=classifier_activation, name="predictions")(x)
    else:
        x = global_pool(x, pooling)
    return finish_model(inputs, x, name, weights)


# Table 1 of He et al. 2016. num_params: Keras counting at 224x224, 1000 classes.
# resnet50/101/152 equal keras.applications.ResNet50/101/152(weights=None).count_params().
# resnet18/34: torchvision's resnet18/resnet34 count (11,689,512 / 21,797,672) plus our
# conv biases and BN moving statistics (see tests/models/test_resnet.py).
_VARIANTS = {
    "resnet18": dict(block="basic", stack_sizes=(2, 2, 2, 2), num_params=11_703_912),
    "resnet34": dict(block="basic", stack_sizes=(3, 4, 6, 3), num_params=21_823_208),
    "resnet50": dict(block="bottleneck", stack_sizes=(3, 4, 6, 3), num_params=25_636_712),
    "resnet101": dict(block="bottleneck", stack_sizes=(3, 4, 23, 3), num_params=44_707_176),
    "resnet152": dict(block="bottleneck", stack_sizes=(3, 8, 36, 3), num_params=60_419_944),
}
_TEST_OVERRIDES = {"input_shape": (32, 32, 3), "num_classes": 5}

for _name, _config in _VARIANTS.items():
    _config = dict(_config)
    register_model(
        _name,
        resnet,
        task="classification",
        paper=RESNET_PAPER,
        num_params=_config.pop("num_params"),
        test_overrides=_TEST_OVERRIDES,
        **_config,
    )

# torchvision's ResNet-50/101/152 ("v1.5"): the same stacks, the stride on the 3x3, no conv
# biases, BN epsilon 1e-5, torchvision's ImageNet normalization. Trainable parameters equal
# torchvision 0.28's `ResNet{50,101,152}_Weights.IMAGENET1K_V1.meta["num_params"]` (25,557,032 /
# 44,549,160 / 60,192,808; tests/models/test_resnet.py); Keras counting adds the BN moving
# mean and variance, 2 per BN channel: 53,120 / 105,344 / 151,424.
_V1_5_VARIANTS = {
    "resnet50_v1_5": dict(stack_sizes=(3, 4, 6, 3), num_params=25_610_152),
    "resnet101_v1_5": dict(stack_sizes=(3, 4, 23, 3), num_params=44_654_504),
    "resnet152_v1_5": dict(stack_sizes=(3, 8, 36, 3), num_params=60_344_232),
}
for _name, _config in _V1_5_VARIANTS.items():
    register_model(
        _name,
        resnet,
        task="classification",
        paper=V1_5_PAPER,
        num_params=_config["num_params"],
        test_overrides=_TEST_OVERRIDES,
        block="bottleneck",
        stack_sizes=_config["stack_sizes"],
        stride_on="3x3",
        use_bias=False,
        bn_epsilon=TORCHVISION_BN_EPSILON,
        preprocessing="torch",
    )

# SE-ResNet-50: an SE block (r = 16) on every bottleneck's residual branch (Hu et al., Fig. 3).
register_model(
    "se_resnet50",
    resnet,
    task="classification",
    paper=SE_PAPER,
    # timm/torchvision-style SE-ResNet-50 has 28,088,024 (~28.1M in Hu et al. Table 2) without
    # conv biases and BN moving statistics; Keras counting adds them back.
    num_params=28_167_704,
    test_overrides=_TEST_OVERRIDES,
    block="bottleneck",
    stack_sizes=(3, 4, 6, 3),
    se_ratio=16,
)

# A^2-Net on ResNet-50: five double attention blocks, after every other residual unit of
# res3 (conv3, 4 units) and res4 (conv4, 6 units), c_m = c_n = channels / 2.
A2_RESNET50_BLOCKS = (
    "conv3_block2",
    "conv3_block4",
    "conv4_block2",
    "conv4_block4",
    "conv4_block6",
)
register_model(
    "a2_resnet50",
    resnet,
    task="classification",
    paper=A2_PAPER,
    # resnet50's 25,636,712 + 2 blocks at 512 channels (c=256): 2 * (3 * (512*256 + 256) +
    # 256*512 + 512) = 1,051,136 + 3 blocks at 1024 channels (c=512): 3 * (3 * (1024*512 +
    # 512) + 512*1024 + 1024) = 6,299,136; ~33.0M as Chen et al. report for A^2-Net-50.
    num_params=32_986_984,
    test_overrides=_TEST_OVERRIDES,
    block="bottleneck",
    stack_sizes=(3, 4, 6, 3),
    a2_after=A2_RESNET50_BLOCKS,
    a2_reduction=2,
)
