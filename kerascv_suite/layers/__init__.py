"""Reusable Keras layers (keras.ops only, every backend, each with `get_config`)."""

from kerascv_suite.layers.image_preprocessing import ImagePreprocessing

__all__ = ["ImagePreprocessing"]
