"""Centre-crop a skip connection to a tensor's size and concatenate (U-Net)."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kerascv_suite")
class CropConcatenate(keras.layers.Layer):
    """Concatenates a centre-cropped skip tensor with an upsampled tensor.

    Ronneberger, Fischer, Brox, "U-Net: Convolutional Networks for Biomedical Image
    Segmentation", MICCAI 2015, section 2: each expansive step concatenates the up-convolved
    map "with the correspondingly cropped feature map from the contracting path" -- cropping
    is needed because valid convolutions lose border pixels. When the odd difference cannot be
    split evenly the extra row/column is dropped at the bottom/right.

    Called on `[upsampled, skip]`. Output: `concatenate([cropped_skip, upsampled], axis=-1)`.

    Input shapes: `upsampled (batch, h, w, c1)`, `skip (batch, H, W, c2)` with `H >= h`,
    `W >= w`. Output shape: `(batch, h, w, c2 + c1)`.

    Example:
        >>> y = CropConcatenate()([up, skip])  # up: (1, 56, 56, 512), skip: (1, 64, 64, 512)
    """

    def call(self, inputs):
        upsampled, skip = inputs
        h, w = upsampled.shape[1], upsampled.shape[2]
        big_h, big_w = skip.shape[1], skip.shape[2]
        if None not in (h, w, big_h, big_w):
            top, left = (big_h - h) // 2, (big_w - w) // 2
            cropped = skip[:, top : top + h, left : left + w, :]
        else:  # dynamic sizes (tensorflow graphs with unknown height/width)
            h, w = ops.shape(upsampled)[1], ops.shape(upsampled)[2]
            top = (ops.shape(skip)[1] - h) // 2
            left = (ops.shape(skip)[2] - w) // 2
            size = (ops.shape(skip)[0], h, w, ops.shape(skip)[3])
            cropped = ops.slice(skip, (0, top, left, 0), size)
        return ops.concatenate([cropped, ops.cast(upsampled, cropped.dtype)], axis=-1)

    def compute_output_shape(self, input_shape):
        upsampled, skip = input_shape
        channels = None if None in (upsampled[3], skip[3]) else upsampled[3] + skip[3]
        return (upsampled[0], upsampled[1], upsampled[2], channels)

    def build(self, input_shape):
        upsampled, skip = input_shape
        for axis in (1, 2):
            if None not in (upsampled[axis], skip[axis]) and skip[axis] < upsampled[axis]:
                raise ValueError(
                    "The skip tensor must be at least as large as the upsampled one. "
                    f"Received: upsampled shape={tuple(upsampled)}, skip shape={tuple(skip)}"
                )
        super().build(input_shape)
