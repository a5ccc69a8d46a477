"""Reusable Keras layers (keras.ops only, every backend, each with `get_config`)."""

from kerascv_suite.layers.connection_table_conv2d import ConnectionTableConv2D
from kerascv_suite.layers.double_attention import DoubleAttention
from kerascv_suite.layers.fire_module import FireModule
from kerascv_suite.layers.image_preprocessing import ImagePreprocessing
from kerascv_suite.layers.inception_module import (
    InceptionModule,
    InceptionV2ModuleA,
    InceptionV2ModuleB,
    InceptionV2ModuleC,
    InceptionV2Reduction,
)
from kerascv_suite.layers.local_response_normalization import LocalResponseNormalization
from kerascv_suite.layers.residual_blocks import BasicBlock, BottleneckBlock
from kerascv_suite.layers.scaled_tanh import scaled_tanh
from kerascv_suite.layers.squeeze_excite import SqueezeExcite
from kerascv_suite.layers.trainable_subsampling import TrainableSubsampling

__all__ = [
    "BasicBlock",
    "BottleneckBlock",
    "ConnectionTableConv2D",
    "DoubleAttention",
    "FireModule",
    "ImagePreprocessing",
    "InceptionModule",
    "InceptionV2ModuleA",
    "InceptionV2ModuleB",
    "InceptionV2ModuleC",
    "InceptionV2Reduction",
    "LocalResponseNormalization",
    "SqueezeExcite",
    "TrainableSubsampling",
    "scaled_tanh",
]
