"""In-model image preprocessing, so exported and registered models are self-contained."""

import keras
from keras import ops

# Per-channel constants of the reference implementations (keras.applications
# `imagenet_utils.preprocess_input`, torchvision's ImageNet transforms).
_CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)
_TORCH_MEAN = (0.485, 0.456, 0.406)
_TORCH_STD = (0.229, 0.224, 0.225)
MODES = ("caffe", "torch", "tf", "unit", "none")


@keras.saving.register_keras_serializable(package="kerascv_suite")
class ImagePreprocessing(keras.layers.Layer):
    """Maps RGB images with values in [0, 255] to what a network was trained on.

    Modes follow `keras.applications.imagenet_utils.preprocess_input`:
      - `"caffe"`: RGB -> BGR, then subtract the ImageNet BGR mean (VGG, ResNet).
      - `"torch"`: scale to [0, 1], then normalize with the ImageNet mean and std.
      - `"tf"`: scale to [-1, 1] (Inception).
      - `"unit"`: scale to [0, 1].
      - `"none"`: cast to float only.

    Input shape: `(batch, height, width, 3)` for caffe/torch, any channels otherwise
    (uint8 or float). Output shape: the same, in the layer's compute dtype. No weights.
    """

    def __init__(self, mode="caffe", **kwargs):
        super().__init__(**kwargs)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}. Received: mode={mode!r}")
        self.mode = mode

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        if self.mode == "caffe":
            x = ops.flip(x, axis=-1)
            return x - ops.convert_to_tensor(_CAFFE_BGR_MEAN, dtype=self.compute_dtype)
        if self.mode == "torch":
            mean = ops.convert_to_tensor(_TORCH_MEAN, dtype=self.compute_dtype)
            std = ops.convert_to_tensor(_TORCH_STD, dtype=self.compute_dtype)
            return (x / 255.0 - mean) / std
        if self.mode == "tf":
            return x / 127.5 - 1.0
        if self.mode == "unit":
            return x / 255.0
        return x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}
