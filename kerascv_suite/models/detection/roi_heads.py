"""The Fast R-CNN box head: RoI pooling, two fully connected layers, class and box outputs."""

import keras
from keras import ops

from kerascv_suite.layers.roi_align import RoIAlign
from kerascv_suite.layers.roi_pooling import RoIPooling

POOLINGS = ("roi_pool", "roi_align", "spp")
SPP_BINS = (4, 2, 1)


@keras.saving.register_keras_serializable(package="kerascv_suite")
class RoIBoxHead(keras.layers.Layer):
    """Pools each RoI and predicts C + 1 class logits and class-specific box deltas.

    Girshick, "Fast R-CNN", ICCV 2015, Fig. 1: RoI max pooling to 7 x 7 (`"roi_pool"`),
    `fc6`, `fc7` (4096 with ReLU for VGG16), then sibling `cls_score` (C + 1 logits,
    background at 0) and `bbox_pred` (4 (C + 1) deltas). `"roi_align"` uses RoIAlign
    (He et al., "Mask R-CNN", 2017) instead; `"spp"` pools each RoI over a 4x4, 2x2 and 1x1
    pyramid and concatenates the bins (He et al., "SPP-net", 2014, sec. 4 for detection).
    `cls_score` and `bbox_pred` start from N(0, 0.01) and N(0, 0.001) (paper sec. 2.3).

    Args:
        num_classes: real classes C.
        pooling: one of `POOLINGS`.
        pool_size: bins per side for RoI pooling / align.
        spatial_scale: feature cells per input pixel (1/16 for stride-16 backbones).
        units: sizes of the fully connected layers (`(4096, 4096)` for VGG16).
        dropout: dropout after each fc layer (0.5 in the VGG16 head of Fast R-CNN).

    Input: `[features (batch, h, w, channels), rois (batch, R, 4)]`, rois xyxy in pixels.
    Output: `(class_logits (batch, R, C + 1), box_deltas (batch, R, C + 1, 4))`.
    """

    def __init__(self, num_classes, pooling="roi_pool", pool_size=7, spatial_scale=1.0 / 16,
                 units=(4096, 4096), dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}. Received: pooling={pooling!r}")
        self.num_classes = int(num_classes)
        self.pooling = pooling
        self.pool_size = int(pool_size)
        self.spatial_scale = float(spatial_scale)
        self.units = tuple(int(u) for u in units)
        self.dropout = float(dropout)
        if pooling == "spp":
            self.pools = [RoIPooling(n, spatial_scale, name=f"spp_{n}x{n}") for n in SPP_BINS]
        elif pooling == "roi_align":
            self.pools = [RoIAlign(pool_size, spatial_scale, sampling_ratio=2, name="roi_align")]
        else:
            self.pools = [RoIPooling(pool_size, spatial_scale, name="roi_pool")]
        self.fcs = [keras.layers.Dense(u, activation="relu", name=f"fc{6 + i}")
                    for i, u in enumerate(self.units)]
        self.drops = [keras.layers.Dropout(self.dropout) for _ in self.units] if dropout else []
        self.cls_score = keras.layers.Dense(
            self.num_classes + 1, name="cls_score",
            kernel_initializer=keras.initializers.RandomNormal(stddev=0.01))
        self.bbox_pred = keras.layers.Dense(
            4 * (self.num_classes + 1), name="bbox_pred",
            kernel_initializer=keras.initializers.RandomNormal(stddev=0.001))

    def _pooled_size(self, channels):
        if self.pooling == "spp":
            return channels * sum(n * n for n in SPP_BINS)
        return channels * self.pool_size ** 2

    def build(self, input_shape):
        # Built here, so no layer of a detector is left unbuilt (jax would then trace
        # a whole eager forward pass before the first predict / fit).
        for layer in (*self.pools, *self.drops):
            layer.build(input_shape if layer in self.pools else (None, None, 1))
        size = self._pooled_size(input_shape[0][-1])
        for fc in self.fcs:
            fc.build((None, None, size))
            size = fc.units
        self.cls_score.build((None, None, size))
        self.bbox_pred.build((None, None, size))

    def call(self, inputs, training=None):
        features, rois = inputs
        num_rois = rois.shape[1]
        pooled = [ops.reshape(pool([features, rois]),
                              (-1, num_rois, pool.pool_size[0] * pool.pool_size[1]
                               * features.shape[-1])) for pool in self.pools]
        x = pooled[0] if len(pooled) == 1 else ops.concatenate(pooled, axis=-1)
        for i, fc in enumerate(self.fcs):
            x = fc(x)
            if self.drops:
                x = self.drops[i](x, training=training)
        deltas = ops.reshape(self.bbox_pred(x), (-1, num_rois, self.num_classes + 1, 4))
        return self.cls_score(x), deltas

    def compute_output_shape(self, input_shape):
        batch, rois = input_shape[1][0], input_shape[1][1]
        return (batch, rois, self.num_classes + 1), (batch, rois, self.num_classes + 1, 4)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes,
                "pooling": self.pooling, "pool_size": self.pool_size,
                "spatial_scale": self.spatial_scale, "units": self.units,
                "dropout": self.dropout}
