"""Encoding boxes as regression targets relative to anchors, and decoding them back."""

import math

from keras import ops
from keras.utils import bounding_boxes

# Faster R-CNN / Detectron: never let exp(dw) blow up a box beyond 1000/16 of its anchor.
DEFAULT_SCALE_CLAMP = math.log(1000.0 / 16)


class BoxCoder:
    """The R-CNN box parametrization with per-coordinate weights.

    Girshick et al., "Rich feature hierarchies..." (2014, appendix C) and Ren et al., "Faster
    R-CNN" (2015, eq. 2): for an anchor (xa, ya, wa, ha) (centre, size) and a box (x, y, w, h)

        dx = wx (x - xa) / wa,  dy = wy (y - ya) / ha,  dw = ww log(w / wa),  dh = wh log(h / ha)

    Weights (1, 1, 1, 1) are the RPN's; (10, 10, 5, 5) those of the Fast/Faster R-CNN box head
    (torchvision, Detectron). SSD's "variances" (0.1, 0.1, 0.2, 0.2) (Liu et al., "SSD", 2016,
    reference implementation) are the same thing inverted: `BoxCoder.from_variances(...)`.
    The arithmetic is keras' `encode_box_to_deltas` / `decode_deltas_to_boxes`; this class
    fixes the conventions and clamps dw, dh before `exp` when decoding.

    Args:
        weights: `(wx, wy, ww, wh)`.
        scale_clamp: upper bound of the (unweighted) dw, dh when decoding.
        box_format: format of the boxes and anchors given to and returned by the coder.

    Shapes: anchors `(num_anchors, 4)` or `(batch, num_anchors, 4)`; boxes and deltas
    `(..., num_anchors, 4)` broadcasting against them.

    Example:
        >>> coder = BoxCoder(weights=(10.0, 10.0, 5.0, 5.0))
        >>> deltas = coder.encode(anchors, matched_gt_boxes)  # (batch, num_anchors, 4)
        >>> boxes = coder.decode(anchors, predicted_deltas)
    """

    def __init__(self, weights=(1.0, 1.0, 1.0, 1.0), scale_clamp=DEFAULT_SCALE_CLAMP,
                 box_format="xyxy"):
        weights = tuple(float(w) for w in weights)
        if len(weights) != 4 or min(weights) <= 0:
            raise ValueError(f"weights must be 4 positive numbers. Received: weights={weights}")
        self.weights = weights
        self.scale_clamp = float(scale_clamp)
        self.box_format = box_format

    @classmethod
    def from_variances(cls, variances=(0.1, 0.1, 0.2, 0.2), **kwargs):
        """SSD's coder: deltas divided by `variances` (weights = 1 / variances)."""
        return cls(weights=tuple(1.0 / float(v) for v in variances), **kwargs)

    @property
    def variances(self):
        return tuple(1.0 / w for w in self.weights)

    def encode(self, anchors, boxes):
        """Regression targets `(..., num_anchors, 4)` = (dx, dy, dw, dh) of `boxes`."""
        return bounding_boxes.encode_box_to_deltas(
            anchors, boxes, anchor_format=self.box_format, box_format=self.box_format,
            encoding_format="center_xywh", variance=self.variances)

    def decode(self, anchors, deltas):
        """Boxes `(..., num_anchors, 4)` in `box_format` from (dx, dy, dw, dh) deltas."""
        deltas = ops.convert_to_tensor(deltas)
        # The clamp bounds dw / ww, so the bound on the weighted delta is clamp * ww.
        limit = ops.convert_to_tensor(
            [math.inf, math.inf, self.scale_clamp * self.weights[2],
             self.scale_clamp * self.weights[3]], dtype=deltas.dtype)
        deltas = ops.minimum(deltas, limit)
        return bounding_boxes.decode_deltas_to_boxes(
            anchors, deltas, anchor_format=self.box_format, box_format=self.box_format,
            encoded_format="center_xywh", variance=self.variances)

    def get_config(self):
        return {"weights": self.weights, "scale_clamp": self.scale_clamp,
                "box_format": self.box_format}
