"""Per-pixel segmentation losses: cross-entropy with an ignore label, soft Dice, and both.

Conventions (the data layer's): ground truth is an integer class map
`(batch, height, width)` (or `(batch, height, width, 1)`), 255 marks "void" pixels (VOC's
border label) that no loss sees; predictions are `(batch, height, width, num_classes)`
probabilities (the models' softmax head) or logits with `from_logits=True`.

Both losses are computed over every non-ignored pixel of the batch at once (a pixel-weighted
mean, not a mean of per-image values), so images with many void pixels weigh less.
"""

import keras
from keras import ops

IGNORE_INDEX = 255
_EPSILON = 1e-7


def _prepare(y_true, y_pred, ignore_index, from_logits):
    """Flattened `(pixels,)` labels (ignored -> 0), `(pixels,)` validity, `(pixels, K)`
    log-probabilities and probabilities."""
    y_pred = ops.cast(ops.convert_to_tensor(y_pred), "float32")
    y_true = ops.convert_to_tensor(y_true)
    num_classes = y_pred.shape[-1]
    y_true = ops.reshape(ops.cast(y_true, "int32"), (-1,))
    y_pred = ops.reshape(y_pred, (-1, num_classes))
    valid = ops.ones_like(y_true, dtype="bool")
    if ignore_index is not None:
        valid = ops.not_equal(y_true, ignore_index)
    labels = ops.where(valid, y_true, 0)
    if from_logits:
        log_probs = ops.log_softmax(y_pred, axis=-1)
        probs = ops.exp(log_probs)
    else:
        probs = ops.clip(y_pred, _EPSILON, 1.0)
        log_probs = ops.log(probs)
    return labels, ops.cast(valid, "float32"), log_probs, probs


def sparse_cross_entropy(y_true, y_pred, ignore_index=IGNORE_INDEX, from_logits=False):
    """Mean per-pixel cross-entropy over the pixels whose label is not `ignore_index`.

    Args:
        y_true: integer class maps `(batch, height, width)` or `(batch, height, width, 1)`.
        y_pred: `(batch, height, width, num_classes)` probabilities (or logits).
        ignore_index: label value left out of the mean (None: none).
        from_logits: `y_pred` holds logits.

    Returns:
        A scalar; 0 when every pixel is ignored.
    """
    labels, valid, log_probs, _ = _prepare(y_true, y_pred, ignore_index, from_logits)
    picked = ops.take_along_axis(log_probs, labels[:, None], axis=-1)[:, 0]
    return -ops.sum(picked * valid) / ops.maximum(ops.sum(valid), 1.0)


def dice_loss(y_true, y_pred, ignore_index=IGNORE_INDEX, from_logits=False, smooth=1.0):
    """Soft Dice loss, `1 - mean_c (2 |P_c G_c| + s) / (|P_c| + |G_c| + s)`.

    The multi-class form of Milletari, Navab, Ahmadi, "V-Net: Fully Convolutional Neural
    Networks for Volumetric Medical Image Segmentation", 3DV 2016 (eq. 1, with the sums
    taken over every non-ignored pixel of the batch and the squared denominators replaced by
    plain sums, as most implementations do). `smooth` keeps a class absent from both the
    prediction and the ground truth at a Dice of 1 instead of 0/0.

    Args:
        y_true, y_pred, ignore_index, from_logits: as in `sparse_cross_entropy`.
        smooth: additive smoothing of numerator and denominator.

    Returns:
        A scalar in [0, 1).
    """
    labels, valid, _, probs = _prepare(y_true, y_pred, ignore_index, from_logits)
    num_classes = probs.shape[-1]
    truth = ops.one_hot(labels, num_classes) * valid[:, None]
    probs = probs * valid[:, None]
    intersection = ops.sum(probs * truth, axis=0)
    total = ops.sum(probs, axis=0) + ops.sum(truth, axis=0)
    return 1.0 - ops.mean((2.0 * intersection + smooth) / (total + smooth))


@keras.saving.register_keras_serializable(package="kerascv_suite")
class SegmentationLoss(keras.losses.Loss):
    """`ce_weight * sparse_cross_entropy + dice_weight * dice_loss`.

    Args:
        ce_weight: weight of the cross-entropy term (0 leaves it out).
        dice_weight: weight of the Dice term (0 leaves it out).
        ignore_index: ground-truth value no term sees (255).
        from_logits: predictions are logits.
        smooth: Dice smoothing.
        name: loss name.

    Example:
        >>> model.compile(optimizer="adam", loss=SegmentationLoss(1.0, 1.0))
    """

    def __init__(self, ce_weight=1.0, dice_weight=0.0, ignore_index=IGNORE_INDEX,
                 from_logits=False, smooth=1.0, name="segmentation_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        if ce_weight < 0 or dice_weight < 0 or ce_weight + dice_weight <= 0:
            raise ValueError("ce_weight and dice_weight must be >= 0, not both 0. "
                             f"Received: ce_weight={ce_weight}, dice_weight={dice_weight}")
        self.ce_weight = float(ce_weight)
        self.dice_weight = float(dice_weight)
        self.ignore_index = ignore_index
        self.from_logits = from_logits
        self.smooth = float(smooth)

    def call(self, y_true, y_pred):
        loss = 0.0
        if self.ce_weight:
            loss += self.ce_weight * sparse_cross_entropy(y_true, y_pred, self.ignore_index,
                                                          self.from_logits)
        if self.dice_weight:
            loss += self.dice_weight * dice_loss(y_true, y_pred, self.ignore_index,
                                                 self.from_logits, self.smooth)
        return loss

    def get_config(self):
        return {
            **super().get_config(),
            "ce_weight": self.ce_weight,
            "dice_weight": self.dice_weight,
            "ignore_index": self.ignore_index,
            "from_logits": self.from_logits,
            "smooth": self.smooth,
        }


LOSSES = {"ce": (1.0, 0.0), "dice": (0.0, 1.0), "ce+dice": (1.0, 1.0)}


def segmentation_loss(name="ce", **kwargs):
    """`SegmentationLoss` by name: `"ce"`, `"dice"` or `"ce+dice"` (equal weights)."""
    if name not in LOSSES:
        raise ValueError(f"loss must be one of {tuple(LOSSES)}. Received: loss={name!r}")
    ce_weight, dice_weight = LOSSES[name]
    return SegmentationLoss(ce_weight, dice_weight, name=name.replace("+", "_"), **kwargs)
