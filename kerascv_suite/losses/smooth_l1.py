"""The smooth-L1 (Huber-like) box regression loss of Fast R-CNN."""

import keras
from keras import ops


def smooth_l1(y_true, y_pred, beta=1.0):
    """Elementwise smooth L1: `0.5 x^2 / beta` where `|x| < beta`, else `|x| - 0.5 beta`.

    Girshick, "Fast R-CNN", ICCV 2015, eq. 3 (beta = 1); torchvision's RPN uses beta = 1/9.
    Less sensitive to outliers than L2, so no exploding gradients from far-off targets.

    Args:
        y_true, y_pred: tensors of the same shape, e.g. `(batch, num_boxes, 4)`.
        beta: where the quadratic part turns linear (> 0).

    Returns:
        A tensor of the input shape (no reduction).
    """
    if beta <= 0:
        raise ValueError(f"beta must be > 0. Received: beta={beta}")
    diff = ops.abs(ops.convert_to_tensor(y_pred) - ops.cast(y_true, ops.dtype(y_pred)))
    return ops.where(diff < beta, 0.5 * ops.square(diff) / beta, diff - 0.5 * beta)


@keras.saving.register_keras_serializable(package="kerascv_suite")
class SmoothL1Loss(keras.losses.Loss):
    """Smooth L1 summed over the last axis (the 4 box coordinates), see `smooth_l1`.

    Args:
        beta: where the quadratic part turns linear.

    Example:
        >>> loss = SmoothL1Loss()(target_deltas, predicted_deltas)  # (batch, boxes, 4)
    """

    def __init__(self, beta=1.0, reduction="sum_over_batch_size", name="smooth_l1"):
        super().__init__(reduction=reduction, name=name)
        self.beta = float(beta)

    def call(self, y_true, y_pred):
        return ops.sum(smooth_l1(y_true, y_pred, self.beta), axis=-1)

    def get_config(self):
        return {**super().get_config(), "beta": self.beta}
