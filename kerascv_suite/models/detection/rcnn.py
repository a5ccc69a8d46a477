"""R-CNN (Girshick, Donahue, Darrell, Malik, "Rich feature hierarchies for accurate object
detection and semantic segmentation", CVPR 2014)."""

import keras
import numpy as np
from keras import ops
from keras.utils import bounding_boxes

from kerascv_suite.bounding_box import BoxCoder, Matcher
from kerascv_suite.layers.roi_align import RoIAlign
from kerascv_suite.models.classification.alexnet import alexnet
from kerascv_suite.models.classification.vgg import vgg
from kerascv_suite.models.detection import proposals as P
from kerascv_suite.models.detection.backbones import load_detector_backbone, stride16_backbone
from kerascv_suite.models.detection.two_stage import (decoder_settings, detector_facts,
                                                      sampler_from)
from kerascv_suite.models.metadata import HasMetadata, stored_metadata, with_metadata
from kerascv_suite.models.registry import register_model
from kerascv_suite.models.weights import load_weights
from kerascv_suite.weights.backbone import check_backbone_args

PAPER = ("Girshick, Donahue, Darrell, Malik, 'Rich feature hierarchies for accurate object "
         "detection and semantic segmentation', CVPR 2014")


def _crop_backbone(backbone, warp_size, preprocessing):
    if backbone == "alexnet":
        base = alexnet(input_shape=(warp_size, warp_size, 3), include_top=False,
                       preprocessing=preprocessing)
        return keras.Model(base.input, base.get_layer("pool5").output, name="alexnet_backbone")
    if backbone == "vgg16":
        # VGG16 to pool5 (the R-CNN journal version's "O-Net", Simonyan & Zisserman 2015):
        # at 224 px warps pool5 is 7x7x512, what VGG16's fc1 reads.
        base = vgg(input_shape=(warp_size, warp_size, 3), include_top=False, config="D",
                   preprocessing=preprocessing)
        return keras.Model(base.input, base.get_layer("block5_pool").output,
                           name="vgg16_backbone")
    if backbone == "small":
        return stride16_backbone("small", (warp_size, warp_size, 3), preprocessing)[0]
    raise ValueError("backbone must be 'alexnet', 'vgg16' or 'small'. "
                     f"Received: backbone={backbone!r}")


@keras.saving.register_keras_serializable(package="kerascv_suite")
class RCNN(HasMetadata, keras.Model):
    """R-CNN: each region proposal is warped to a fixed size and classified on its own.

    The three stages of the paper (sec. 2):
    1. proposals: selective search (`selective_search_batch`), passed as
       `{"images", "proposals" (batch, R, 4)}`; bare images get sliding windows
       (`proposals.grid_proposals`), a documented stand-in inside the graph;
    2. features: each proposal, dilated to `context_padding` pixels of context at the warped
       size (16 at 227, appendix A), is warped to `warp_size`² by bilinear sampling
       (RoIAlign on the image) and passed through the CNN (AlexNet to `pool5`, then `fc6`,
       `fc7`); `model.fit` fine-tunes it with a (C + 1)-way softmax (`cls_score`) on
       128-region batches, 25% foreground (IoU >= 0.5), the rest background (sec. 2.3);
    3. scoring: per-class linear SVMs on `fc7` (`svm`), then class-specific box regression
       on `pool5` (`bbox_pred`, appendix C), both fitted by `fit_svms_and_regressors`
       (scikit-learn); greedy per-class NMS at IoU 0.3.
    Until the SVMs are fitted, `svm` is zero and every score is 0.5.

    Args:
        num_classes: object classes C.
        input_shape: `(height, width, 3)` static image size.
        backbone: `"alexnet"` (the paper), `"vgg16"` (to pool5; warp_size 224) or `"small"`.
        warp_size: warped region side (227 for AlexNet, 224 for VGG16).
        context_padding: context pixels around the region at the warped size.
        fc_units: sizes of fc6, fc7 (4096 in the paper).
        region_sampler: config of the fine-tuning sampler (128 regions, 25% positive).
        score_threshold, nms_threshold, max_detections: defaults of the post-processing;
            `call` and `Detector` take others as arguments.
        metadata: the model's metadata fields (`models.metadata`; the registry sets them).

    Output (inference): the detection contract dict.
    """

    family = "rcnn"

    def __init__(self, num_classes=20, input_shape=(500, 500, 3), backbone="alexnet",
                 preprocessing="caffe", warp_size=227, context_padding=16,
                 fc_units=(4096, 4096), dropout=0.5, region_sampler=None,
                 fallback_stride=32, fallback_scales=(64, 128, 256), score_threshold=0.05,
                 nms_threshold=0.3, max_detections=100, seed=None, metadata=None, **kwargs):
        super().__init__(**kwargs)
        with_metadata(self, **dict(metadata or {}))
        self.num_classes = int(num_classes)
        self.image_shape = tuple(input_shape)
        self.backbone_name = backbone
        self.preprocessing = preprocessing
        self.warp_size = int(warp_size)
        self.context_padding = int(context_padding)
        self.fc_units = tuple(int(u) for u in fc_units)
        self.dropout = float(dropout)
        self.fallback_stride = int(fallback_stride)
        self.fallback_scales = tuple(fallback_scales)
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)
        self.max_detections = int(max_detections)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.region_sampler = sampler_from(region_sampler, 128, 0.25, self.seed_generator)
        self.box_coder = BoxCoder()  # appendix C: unweighted deltas
        self.fallback = np.asarray(ops.convert_to_numpy(P.grid_proposals(
            self.image_shape[:2], self.fallback_stride, self.fallback_scales)))

        # === Layers ===
        self.warp = RoIAlign(self.warp_size, 1.0, sampling_ratio=1, aligned=True, name="warp")
        self.backbone = _crop_backbone(backbone, self.warp_size, preprocessing)
        self.flatten = keras.layers.Flatten(name="pool5_flatten")
        self.fcs = [keras.layers.Dense(u, activation="relu", name=f"fc{6 + i}")
                    for i, u in enumerate(self.fc_units)]
        self.drops = [keras.layers.Dropout(self.dropout, name=f"fc{6 + i}_dropout")
                      for i in range(len(self.fc_units))]
        self.cls_score = keras.layers.Dense(self.num_classes + 1, name="cls_score")
        self.svm = keras.layers.Dense(self.num_classes, kernel_initializer="zeros",
                                      trainable=False, name="svm")
        self.bbox_pred = keras.layers.Dense(4 * self.num_classes, kernel_initializer="zeros",
                                            trainable=False, name="bbox_pred")
        pool5 = int(np.prod(self.backbone.output.shape[1:]))
        self.warp.build([(None, *self.image_shape), (None, None, 4)])
        self.flatten.build(self.backbone.output.shape)
        size = pool5
        for fc, drop in zip(self.fcs, self.drops):
            fc.build((None, size))
            drop.build((None, fc.units))
            size = fc.units
        self.cls_score.build((None, size))
        self.svm.build((None, size))
        self.bbox_pred.build((None, pool5))
        self.built = True

    # === Forward ===
    def _proposals(self, inputs):
        images = P.images_from_batch(inputs)
        if isinstance(inputs, dict) and "proposals" in inputs:
            proposals = P.clip_boxes(ops.cast(inputs["proposals"], "float32"),
                                     self.image_shape[:2])
        else:
            proposals = ops.broadcast_to(ops.convert_to_tensor(self.fallback)[None],
                                         (ops.shape(images)[0], *self.fallback.shape))
        valid = ops.logical_and(proposals[..., 2] > proposals[..., 0],
                                proposals[..., 3] > proposals[..., 1])
        return images, proposals, valid

    def region_features(self, images, rois, training=False):
        """`(pool5 (batch, R, d5), fc7 (batch, R, d7))` of the warped regions."""
        # Dilate so the warped crop has `context_padding` pixels of context on each side.
        scale = self.warp_size / max(self.warp_size - 2 * self.context_padding, 1)
        centre = (rois[..., :2] + rois[..., 2:]) / 2
        half = (rois[..., 2:] - rois[..., :2]) * (scale / 2)
        dilated = ops.concatenate([centre - half, centre + half], axis=-1)
        crops = self.warp([ops.cast(images, "float32"), dilated])
        num_rois = rois.shape[1]
        crops = ops.reshape(crops, (-1, self.warp_size, self.warp_size, crops.shape[-1]))
        pool5 = self.flatten(self.backbone(crops, training=training))
        x = pool5
        for fc, drop in zip(self.fcs, self.drops):
            x = drop(fc(x), training=training)
        return (ops.reshape(pool5, (-1, num_rois, pool5.shape[-1])),
                ops.reshape(x, (-1, num_rois, x.shape[-1])))

    def call(self, inputs, training=False, score_threshold=None, iou_threshold=None,
             max_detections=None):
        """The detection contract; the post-processing arguments override the model's
        defaults for this call (see `TwoStageDetector.call`)."""
        images, proposals, valid = self._proposals(inputs)
        if training:
            return {"proposals": proposals, "proposal_valid": valid}
        pool5, fc7 = self.region_features(images, proposals)
        scores = ops.sigmoid(self.svm(fc7))
        scores = ops.concatenate([ops.zeros_like(scores[..., :1]), scores], axis=-1)
        deltas = ops.reshape(self.bbox_pred(pool5), (-1, proposals.shape[1], self.num_classes, 4))
        deltas = ops.concatenate([ops.zeros_like(deltas[:, :, :1]), deltas], axis=2)
        settings = self.decoder_settings(score_threshold, iou_threshold, max_detections)
        return P.detect(scores, deltas, proposals, valid, self.image_shape[:2],
                        coder=self.box_coder, score_threshold=settings["score_threshold"],
                        nms_threshold=settings["iou_threshold"],
                        max_detections=settings["max_detections"])

    def decoder_settings(self, score_threshold=None, iou_threshold=None, max_detections=None):
        """The post-processing settings of a call: the arguments given, else the model's."""
        return decoder_settings(self, score_threshold, iou_threshold, max_detections)

    def metadata_facts(self):
        return detector_facts(self)

    # === Fine-tuning loss ===
    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        images, proposals, valid = self._proposals(x)
        gt_boxes, gt_classes, gt_valid = P.gt_from_batch(x, y)
        # Sec. 2.3: IoU >= 0.5 positive, every other region background.
        rois, labels, _ = P.sample_rois(proposals, valid, gt_boxes, gt_classes, gt_valid,
                                        self.region_sampler, matcher=Matcher(0.5, 0.5),
                                        bg_iou_low=0.0, coder=self.box_coder)
        _, fc7 = self.region_features(images, rois, training=training)
        logits = ops.cast(self.cls_score(fc7), "float32")
        sampled = labels >= 0
        ce = ops.sparse_categorical_crossentropy(ops.maximum(labels, 0), logits,
                                                 from_logits=True)
        mask = ops.cast(sampled, "float32")
        total = ops.sum(ce * mask) / ops.maximum(ops.sum(mask), 1.0)
        for loss in self.losses:
            total = total + ops.cast(ops.sum(loss), total.dtype)
        return total

    # === Config ===
    def get_config(self):
        return {
            "name": self.name, "trainable": self.trainable, "num_classes": self.num_classes,
            "input_shape": self.image_shape, "backbone": self.backbone_name,
            "preprocessing": self.preprocessing, "warp_size": self.warp_size,
            "context_padding": self.context_padding, "fc_units": self.fc_units,
            "dropout": self.dropout,
            "region_sampler": {
                "batch_size_per_image": self.region_sampler.batch_size_per_image,
                "positive_fraction": self.region_sampler.positive_fraction},
            "fallback_stride": self.fallback_stride, "fallback_scales": self.fallback_scales,
            "score_threshold": self.score_threshold, "nms_threshold": self.nms_threshold,
            "max_detections": self.max_detections, "seed": self.seed,
            "metadata": stored_metadata(self),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("input_shape", "fc_units", "fallback_scales"):
            config[key] = tuple(config[key])
        return cls(**config)


def fit_svms_and_regressors(model, images, gt_boxes, gt_classes, proposals, svm_c=1e-3,
                            negative_iou=0.3, regression_iou=0.6, ridge_alpha=1000.0,
                            max_negatives_per_class=2000, batch_size=2, seed=0):
    """Fits R-CNN's per-class linear SVMs and box regressors and writes them into `model`.

    Paper sec. 2.3: positives are the ground-truth boxes of the class, negatives the
    proposals with IoU < 0.3 with every box of that class; a linear SVM (hinge loss,
    scikit-learn's `LinearSVC`) per class on `fc7`. The paper mines hard negatives; here at
    most `max_negatives_per_class` random negatives are used, one pass. Appendix C: a ridge
    regression (lambda = 1000) per class from `pool5` to the deltas of the proposals with
    IoU >= 0.6 with a box of that class.

    Args:
        model: an `RCNN`.
        images: `(N, H, W, 3)` uint8; gt_boxes `(N, M, 4)` xyxy; gt_classes `(N, M)`, -1 pads.
        proposals: `(N, R, 4)` (e.g. `selective_search_batch(images)`), zero rows padding.

    Returns:
        dict of per-class counts `{"positives": [...], "negatives": [...], "regression": [...]}`.
    """
    from sklearn.linear_model import Ridge
    from sklearn.svm import LinearSVC

    rng = np.random.default_rng(seed)
    gt_boxes = np.asarray(gt_boxes, np.float32)
    gt_classes = np.asarray(gt_classes, np.int64)
    # Regions of an image: its proposals followed by its ground-truth boxes.
    rois = np.concatenate([np.asarray(proposals, np.float32), gt_boxes], axis=1)
    pool5, fc7 = [], []
    for start in range(0, len(images), batch_size):
        p5, f7 = model.region_features(ops.convert_to_tensor(images[start:start + batch_size]),
                                       ops.convert_to_tensor(rois[start:start + batch_size]))
        pool5.append(ops.convert_to_numpy(p5))
        fc7.append(ops.convert_to_numpy(f7))
    pool5, fc7 = np.concatenate(pool5), np.concatenate(fc7)
    num_props = rois.shape[1] - gt_boxes.shape[1]
    valid_roi = np.concatenate([(rois[:, :num_props, 2] > rois[:, :num_props, 0])
                                & (rois[:, :num_props, 3] > rois[:, :num_props, 1]),
                                gt_classes >= 0], axis=1)
    iou = np.asarray(ops.convert_to_numpy(bounding_boxes.compute_iou(
        ops.convert_to_tensor(rois), ops.convert_to_tensor(gt_boxes),
        bounding_box_format="xyxy")))  # (N, R + M, M)
    svm_w = np.zeros((fc7.shape[-1], model.num_classes), np.float32)
    svm_b = np.zeros(model.num_classes, np.float32)
    reg_w = np.zeros((pool5.shape[-1], 4 * model.num_classes), np.float32)
    reg_b = np.zeros(4 * model.num_classes, np.float32)
    counts = {"positives": [], "negatives": [], "regression": []}
    is_gt = np.zeros(rois.shape[1], bool)
    is_gt[num_props:] = True
    for c in range(model.num_classes):
        of_class = (gt_classes == c)[:, None, :]  # (N, 1, M)
        best = np.where(of_class, iou, 0.0).max(axis=-1)  # (N, R + M)
        positive = is_gt[None] & valid_roi & (np.pad(gt_classes, ((0, 0), (num_props, 0)),
                                                     constant_values=-1) == c)
        negative = valid_roi & ~is_gt[None] & (best < negative_iou)
        neg_index = np.flatnonzero(negative.ravel())
        if len(neg_index) > max_negatives_per_class:
            neg_index = rng.choice(neg_index, max_negatives_per_class, replace=False)
        pos_index = np.flatnonzero(positive.ravel())
        counts["positives"].append(len(pos_index))
        counts["negatives"].append(len(neg_index))
        flat7 = fc7.reshape(-1, fc7.shape[-1])
        if len(pos_index) and len(neg_index):
            features = flat7[np.concatenate([pos_index, neg_index])]
            labels = np.concatenate([np.ones(len(pos_index)), np.zeros(len(neg_index))])
            svm = LinearSVC(C=svm_c, loss="hinge", max_iter=5000, random_state=seed)
            svm.fit(features, labels)
            svm_w[:, c], svm_b[c] = svm.coef_[0], svm.intercept_[0]
        # Box regression: regions overlapping a box of this class by >= 0.6.
        matched = np.where(of_class, iou, -1.0).argmax(axis=-1)
        reg = valid_roi & (best >= regression_iou)
        index = np.flatnonzero(reg.ravel())
        counts["regression"].append(len(index))
        if len(index):
            n_img, r_idx = np.unravel_index(index, reg.shape)
            targets = ops.convert_to_numpy(model.box_coder.encode(
                ops.convert_to_tensor(rois[n_img, r_idx]),
                ops.convert_to_tensor(gt_boxes[n_img, matched[n_img, r_idx]])))
            ridge = Ridge(alpha=ridge_alpha).fit(pool5.reshape(-1, pool5.shape[-1])[index],
                                                 targets)
            reg_w[:, 4 * c:4 * c + 4], reg_b[4 * c:4 * c + 4] = ridge.coef_.T, ridge.intercept_
    model.svm.set_weights([svm_w, svm_b])
    model.bbox_pred.set_weights([reg_w, reg_b])
    return counts


def rcnn(num_classes=20, input_shape=(500, 500, 3), include_top=True, weights=None,
         pooling=None, classifier_activation="softmax", preprocessing="caffe",
         backbone="alexnet", backbone_weights=None, name=None, **kwargs):
    """Builds an R-CNN (see `RCNN`; fit the SVMs with `fit_svms_and_regressors`).

    Args:
        num_classes: object classes (20 for PASCAL VOC).
        input_shape: `(height, width, 3)`, static.
        include_top: must be True.
        weights: None, or a weights file / MLflow URI of this detector.
        pooling: unused (regions are warped, not pooled); must be None.
        classifier_activation: the fine-tuning classifier's, `"softmax"` (the paper).
        preprocessing: in-model preprocessing mode of the crops.
        backbone: `"alexnet"` (the paper), `"vgg16"` or `"small"`.
        backbone_weights: None, `"imagenet"`, a catalog entry of vgg16 or a file: ImageNet
            VGG16 convolutions, and fc1 / fc2 into fc6 / fc7 at 224 px warps with 4096 units
            (`load_detector_backbone`); `backbone="vgg16"` only.
        name: model name (`rcnn_<backbone>` by default).
        **kwargs: any other `RCNN` argument.
    """
    if not include_top or pooling is not None or classifier_activation != "softmax":
        raise ValueError("R-CNN takes include_top=True, pooling=None and "
                         f"classifier_activation='softmax'. Received: include_top={include_top},"
                         f" pooling={pooling!r}, classifier_activation={classifier_activation!r}")
    name = name or f"rcnn_{backbone}"
    source = check_backbone_args(backbone_weights, backbone, name, preprocessing,
                                 weights=weights)
    model = RCNN(num_classes=num_classes, input_shape=input_shape, backbone=backbone,
                 preprocessing=preprocessing, name=name, **kwargs)
    if source is not None:
        load_detector_backbone(model, source, model.fcs)
    return load_weights(model, weights)


_TEST_OVERRIDES = {
    "input_shape": (64, 64, 3), "num_classes": 3, "backbone": "small", "warp_size": 32,
    "context_padding": 2, "fc_units": (16, 16), "dropout": 0.0, "fallback_stride": 32,
    "fallback_scales": (16, 32), "max_detections": 10, "seed": 0,
    "region_sampler": {"batch_size_per_image": 8, "positive_fraction": 0.25},
}
# num_params by hand (Keras counting), C = 20: AlexNet to pool5 3,747,200 (our `alexnet`
# builder's conv1..conv5, Krizhevsky et al. 2012, one-tower) + fc6 6*6*256*4096+4096 =
# 37,752,832 + fc7 16,781,312 + cls_score 4096*21+21 = 86,037 + svm 4096*20+20 = 81,940 +
# bbox_pred 9216*80+80 = 737,360.
register_model("rcnn", rcnn, task="detection", paper=PAPER, num_params=59_186_681,
               test_overrides=_TEST_OVERRIDES, backbone="alexnet")
# rcnn_small, C = 3: small backbone 388,416 (see faster_rcnn.py) on 64x64 crops -> 4x4x256
# pool5 = 4,096; fc6 4096*256+256 = 1,048,832, fc7 65,792, cls_score 1,028, svm 256*3+3 = 771,
# bbox_pred 4096*12+12 = 49,164.
register_model("rcnn_small", rcnn, task="detection", paper=PAPER, num_params=1_554_003,
               test_overrides=_TEST_OVERRIDES, backbone="small", input_shape=(128, 128, 3),
               num_classes=3, warp_size=64, context_padding=4, fc_units=(256, 256),
               dropout=0.0, fallback_stride=16, fallback_scales=(16, 32, 64),
               region_sampler={"batch_size_per_image": 32, "positive_fraction": 0.25})
