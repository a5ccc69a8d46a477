"""Reusable Keras layers (keras.ops only, every backend, each with `get_config`)."""

from kerascv_suite.layers.image_preprocessing import ImagePreprocessing
from kerascv_suite.layers.inception_module import (
    InceptionModule,
    InceptionV2ModuleA,
    InceptionV2ModuleB,
    InceptionV2ModuleC,
    InceptionV2Reduction,
)

__all__ = [
    "ImagePreprocessing",
    "InceptionModule",
    "InceptionV2ModuleA",
    "InceptionV2ModuleB",
    "InceptionV2ModuleC",
    "InceptionV2Reduction",
]
