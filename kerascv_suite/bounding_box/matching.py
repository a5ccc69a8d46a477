"""Assigning anchors/proposals to ground truth, and sampling training minibatches."""

import keras
from keras import ops

POSITIVE, NEGATIVE, IGNORE = 1, 0, -1


class Matcher:
    """Labels each anchor positive, negative or ignored from its IoU with the ground truth.

    As torchvision's `Matcher` and Ren et al., "Faster R-CNN" (2015, sec. 3.1.2): an anchor is
    positive when its best IoU is >= `high_threshold`, negative when < `low_threshold`, and
    ignored in between (the RPN uses 0.7 / 0.3; the Fast R-CNN head 0.5 / 0.5, with no band).
    With `allow_low_quality_matches`, every ground-truth box also makes positive the
    anchors of highest IoU with it (ties included, "condition (i)" of the paper) when that
    IoU is > 0, so no object is left without an anchor; such an anchor keeps its own best
    match, as in torchvision. Padded ground truth (class < 0, or `gt_valid` False) never
    matches.

    Args:
        high_threshold: IoU at or above which an anchor is positive.
        low_threshold: IoU below which an anchor is negative (<= high_threshold).
        allow_low_quality_matches: force the best anchor(s) of each ground truth positive.

    Example:
        >>> matcher = Matcher(0.7, 0.3, allow_low_quality_matches=True)
        >>> matched_gt, labels = matcher(iou)  # iou: (batch, num_anchors, num_gt)
    """

    def __init__(self, high_threshold=0.7, low_threshold=0.3, allow_low_quality_matches=False):
        if not 0.0 <= low_threshold <= high_threshold <= 1.0:
            raise ValueError(
                "Expected 0 <= low_threshold <= high_threshold <= 1. Received: "
                f"low_threshold={low_threshold}, high_threshold={high_threshold}")
        self.high_threshold = float(high_threshold)
        self.low_threshold = float(low_threshold)
        self.allow_low_quality_matches = bool(allow_low_quality_matches)

    def __call__(self, iou, gt_valid=None):
        """Matches anchors to ground truth.

        Args:
            iou: `(batch, num_anchors, num_gt)` IoU of every anchor with every gt box.
            gt_valid: optional `(batch, num_gt)` bool; False marks padding.

        Returns:
            matched_gt: `(batch, num_anchors)` int32 index of the best gt box of each anchor
                (0 when there is none; use it only where labels is 1).
            labels: `(batch, num_anchors)` int32: 1 positive, 0 negative, -1 ignore.
        """
        iou = ops.convert_to_tensor(iou)
        batch, num_anchors = ops.shape(iou)[0], ops.shape(iou)[1]
        if iou.shape[-1] == 0:
            zeros = ops.zeros((batch, num_anchors), "int32")
            return zeros, zeros
        if gt_valid is not None:
            iou = ops.where(ops.expand_dims(gt_valid, 1), iou, -1.0)
        best_iou = ops.max(iou, axis=-1)
        matched_gt = ops.cast(ops.argmax(iou, axis=-1), "int32")
        labels = ops.where(best_iou >= self.high_threshold, POSITIVE,
                           ops.where(best_iou < self.low_threshold, NEGATIVE, IGNORE))
        if self.allow_low_quality_matches:
            best_per_gt = ops.max(iou, axis=1, keepdims=True)  # (batch, 1, num_gt)
            is_best = ops.logical_and(iou == best_per_gt, best_per_gt > 0.0)
            labels = ops.where(ops.any(is_best, axis=-1), POSITIVE, labels)
        return matched_gt, ops.cast(labels, "int32")

    def get_config(self):
        return {"high_threshold": self.high_threshold, "low_threshold": self.low_threshold,
                "allow_low_quality_matches": self.allow_low_quality_matches}


class BalancedPositiveNegativeSampler:
    """Samples a fixed-size minibatch of anchors with at most a given fraction of positives.

    Ren et al., "Faster R-CNN" (2015, sec. 3.1.3): 256 anchors per image with up to half
    positives, padded with negatives; the Fast R-CNN head samples 128 RoIs per image with
    25% positives (Girshick, "Fast R-CNN", 2015, sec. 2.3). Positives and negatives are
    drawn uniformly without replacement, all images of the batch at once.

    Args:
        batch_size_per_image: anchors sampled per image.
        positive_fraction: the largest share of positives.
        seed: an int (deterministic sequence of draws), a `keras.random.SeedGenerator`, or
            None (unseeded).

    Example:
        >>> sampler = BalancedPositiveNegativeSampler(256, 0.5, seed=0)
        >>> positive, negative = sampler(labels)  # labels from Matcher: (batch, num_anchors)
    """

    def __init__(self, batch_size_per_image=256, positive_fraction=0.5, seed=None):
        if int(batch_size_per_image) < 1 or not 0.0 <= positive_fraction <= 1.0:
            raise ValueError(
                "Expected batch_size_per_image >= 1 and 0 <= positive_fraction <= 1. "
                f"Received: batch_size_per_image={batch_size_per_image}, "
                f"positive_fraction={positive_fraction}")
        self.batch_size_per_image = int(batch_size_per_image)
        self.positive_fraction = float(positive_fraction)
        self.seed = seed
        self._generator = (seed if isinstance(seed, keras.random.SeedGenerator)
                           else keras.random.SeedGenerator(seed))

    def __call__(self, labels):
        """Returns `(positive, negative)`, two `(batch, num_anchors)` bool masks.

        Args:
            labels: `(batch, num_anchors)` int: 1 positive, 0 negative, -1 ignore.
        """
        labels = ops.convert_to_tensor(labels)
        is_pos, is_neg = labels == POSITIVE, labels == NEGATIVE
        max_pos = int(self.batch_size_per_image * self.positive_fraction)
        num_pos = ops.minimum(ops.sum(ops.cast(is_pos, "int32"), axis=1, keepdims=True), max_pos)
        num_neg = ops.minimum(ops.sum(ops.cast(is_neg, "int32"), axis=1, keepdims=True),
                              self.batch_size_per_image - num_pos)
        noise = keras.random.uniform(ops.shape(labels), seed=self._generator)
        return (self._first_k(is_pos, noise, num_pos),
                self._first_k(is_neg, noise, num_neg))

    @staticmethod
    def _first_k(mask, noise, k):
        # A random permutation of the candidates: rank each by its noise among candidates.
        keys = ops.where(mask, noise, 2.0)
        rank = ops.argsort(ops.argsort(keys, axis=-1), axis=-1)
        return ops.logical_and(mask, rank < k)

    def get_config(self):
        return {"batch_size_per_image": self.batch_size_per_image,
                "positive_fraction": self.positive_fraction,
                "seed": self.seed if not isinstance(self.seed, keras.random.SeedGenerator)
                else None}
