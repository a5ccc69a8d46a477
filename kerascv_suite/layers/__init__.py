"""Reusable Keras layers (keras.ops only, every backend, each with `get_config`)."""

from kerascv_suite.layers.adaptive_average_pooling import AdaptiveAveragePooling
from kerascv_suite.layers.bilinear_upsampling import (
    BilinearInitializer,
    bilinear_filter,
    bilinear_upsampling,
)
from kerascv_suite.layers.connection_table_conv2d import ConnectionTableConv2D
from kerascv_suite.layers.crop_concatenate import CropConcatenate
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
from kerascv_suite.layers.l2_normalization import L2Normalization
from kerascv_suite.layers.local_response_normalization import LocalResponseNormalization
from kerascv_suite.layers.max_pooling_with_argmax import MaxPoolingWithArgmax
from kerascv_suite.layers.max_unpooling import MaxUnpooling
from kerascv_suite.layers.residual_blocks import BasicBlock, BottleneckBlock
from kerascv_suite.layers.roi_align import RoIAlign
from kerascv_suite.layers.roi_pooling import RoIPooling
from kerascv_suite.layers.scaled_tanh import scaled_tanh
from kerascv_suite.layers.spatial_pyramid_pooling import SpatialPyramidPooling
from kerascv_suite.layers.squeeze_excite import SqueezeExcite
from kerascv_suite.layers.trainable_subsampling import TrainableSubsampling

__all__ = [
    "AdaptiveAveragePooling",
    "RoIAlign",
    "RoIPooling",
    "SpatialPyramidPooling",
    "BilinearInitializer",
    "CropConcatenate",
    "MaxPoolingWithArgmax",
    "MaxUnpooling",
    "bilinear_filter",
    "bilinear_upsampling",
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
    "L2Normalization",
    "LocalResponseNormalization",
    "SqueezeExcite",
    "TrainableSubsampling",
    "scaled_tanh",
]
