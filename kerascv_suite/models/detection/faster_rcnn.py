"""Faster R-CNN (Ren, He, Girshick, Sun, "Faster R-CNN: Towards Real-Time Object Detection
with Region Proposal Networks", NeurIPS 2015)."""

import keras
import numpy as np
from keras import ops

from kerascv_suite.bounding_box import BoxCoder, Matcher, rpn_anchors
from kerascv_suite.losses.rcnn_losses import rpn_loss
from kerascv_suite.models.detection import proposals as P
from kerascv_suite.models.detection.backbones import load_detector_backbone
from kerascv_suite.models.detection.rpn import RPNHead, rpn_targets
from kerascv_suite.models.detection.two_stage import STRIDE, TwoStageDetector, sampler_from
from kerascv_suite.models.registry import register_model
from kerascv_suite.models.weights import load_weights
from kerascv_suite.weights.backbone import check_backbone_args

PAPER = ("Ren, He, Girshick, Sun, 'Faster R-CNN: Towards Real-Time Object Detection with "
         "Region Proposal Networks', NeurIPS 2015")


@keras.saving.register_keras_serializable(package="kerascv_suite")
class FasterRCNN(TwoStageDetector):
    """Faster R-CNN: a Region Proposal Network and a Fast R-CNN head on one backbone.

    Wired from swappable parts as torchvision's `FasterRCNN`; each part left None is built
    with the paper's defaults:

    - anchors: `anchor_scales` x `anchor_ratios` (128², 256², 512² x 1:1, 1:2, 2:1, k = 9)
      on the stride-16 grid (`bounding_box.rpn_anchors`);
    - `rpn_head`: an `RPNHead` (3x3 conv of `rpn_channels`, k objectness, 4k deltas);
    - `rpn_matcher` (IoU >= 0.7 positive, < 0.3 negative, best anchor of each box positive),
      `rpn_sampler` (256 anchors per image, half positive), `rpn_coder` (weights 1);
    - proposal layer: decode, clip, drop boxes under `rpn_min_size`, top
      `rpn_pre_nms_top_k` (train 12,000 / test 6,000), NMS at 0.7, top
      `rpn_post_nms_top_k` (train 2,000 / test 300);
    - `roi_head`: a `RoIBoxHead` (`pooling` "roi_pool" 7x7 or "roi_align", two fc layers,
      C + 1 softmax and class-specific deltas), `box_matcher` (IoU >= 0.5 foreground),
      background in [`bg_iou_low`, 0.5) (0.1 as Fast R-CNN; torchvision uses 0),
      `box_sampler` (128 RoIs, 25% foreground), `box_coder` (weights 10, 10, 5, 5).

    Training is approximate joint training (paper sec. 3.2): one loss, the RPN loss plus the
    Fast R-CNN loss, with proposals treated as constants.

    Args:
        num_classes: object classes C (background is internal, index 0 of the head).
        input_shape: `(height, width, 3)`, static (anchors and RoI pooling need it).
        backbone: `"vgg16"`, `"resnet50"` or `"small"` (see `stride16_backbone`).
        preprocessing: in-model preprocessing mode (images are RGB in [0, 255]).
        score_threshold, nms_threshold, max_detections: the defaults of the inference
            post-processing (torchvision's 0.05, 0.5 and 100); `call` and `Detector` take
            others as arguments.
        seed: seed of the anchor and RoI sampling.
        metadata: the model's metadata fields (`models.metadata`; the registry sets them).

    Input: `(batch, height, width, 3)` images, or a batch dict with `images` (and, when
    training, `boxes (batch, N, 4)` xyxy and `classes (batch, N)`, -1 padding).
    Output (inference): dict `boxes (batch, max_detections, 4)` xyxy pixels,
    `scores (batch, max_detections)`, `classes (batch, max_detections)` int32 (-1 padding),
    `num_detections (batch,)`.

    Example:
        >>> model = build("faster_rcnn_small", num_classes=3, input_shape=(128, 128, 3))
        >>> model.compile(optimizer="sgd")
        >>> model.fit(dataset_of_batch_dicts)
        >>> detections = model.predict(images)
    """

    family = "faster_rcnn"

    def __init__(self, num_classes=20, input_shape=(600, 1000, 3), backbone="vgg16",
                 preprocessing="caffe", anchor_scales=(128, 256, 512),
                 anchor_ratios=(0.5, 1.0, 2.0), rpn_head=None, rpn_channels=512,
                 rpn_matcher=None, rpn_sampler=None, rpn_coder=None,
                 rpn_pre_nms_top_k=(12000, 6000), rpn_post_nms_top_k=(2000, 300),
                 rpn_nms_threshold=0.7, rpn_min_size=1e-3, roi_head=None, pooling="roi_pool",
                 pool_size=7, head_units=(4096, 4096), head_dropout=0.0, box_matcher=None,
                 box_sampler=None, box_coder=None, bg_iou_low=0.1, score_threshold=0.05,
                 nms_threshold=0.5, max_detections=100, classifier_activation="softmax",
                 seed=None, **kwargs):
        super().__init__(num_classes, input_shape, backbone, preprocessing, pooling,
                         pool_size, head_units, head_dropout, box_matcher, box_sampler,
                         box_coder, bg_iou_low, score_threshold, nms_threshold,
                         max_detections, classifier_activation, roi_head, seed, **kwargs)
        self.anchor_scales = tuple(anchor_scales)
        self.anchor_ratios = tuple(anchor_ratios)
        self.rpn_channels = int(rpn_channels)
        self.rpn_pre_nms_top_k = tuple(int(k) for k in rpn_pre_nms_top_k)
        self.rpn_post_nms_top_k = tuple(int(k) for k in rpn_post_nms_top_k)
        self.rpn_nms_threshold = float(rpn_nms_threshold)
        self.rpn_min_size = float(rpn_min_size)
        self.rpn_matcher = P.matcher_from(rpn_matcher, Matcher(0.7, 0.3, True))
        self.rpn_sampler = sampler_from(rpn_sampler, 256, 0.5, self.seed_generator)
        self.rpn_coder = P.coder_from(rpn_coder, BoxCoder())
        self.anchors = np.asarray(ops.convert_to_numpy(rpn_anchors(
            self.feature_shape, STRIDE, self.anchor_scales, self.anchor_ratios)))
        num_anchors = len(self.anchor_scales) * len(self.anchor_ratios)
        self.rpn_head = rpn_head or RPNHead(num_anchors, rpn_channels, name="rpn")
        if not self.rpn_head.built:
            self.rpn_head.build((None, *self.feature_shape, self.feature_channels))
        self.built = True

    def _proposals(self, inputs, features, training):
        objectness, deltas = self.rpn_head(features)
        phase = 0 if training else 1
        proposals, valid = P.generate_proposals(
            objectness, deltas, ops.convert_to_tensor(self.anchors), self.image_shape[:2],
            self.rpn_pre_nms_top_k[phase], self.rpn_post_nms_top_k[phase],
            self.rpn_nms_threshold, self.rpn_min_size, self.rpn_coder)
        return proposals, valid, {"rpn_objectness": objectness, "rpn_deltas": deltas}

    def _extra_losses(self, y_pred, gt):
        gt_boxes, _, gt_valid = gt
        positive, negative, targets = rpn_targets(
            ops.convert_to_tensor(self.anchors), gt_boxes, gt_valid, self.rpn_matcher,
            self.rpn_sampler, self.rpn_coder)
        return rpn_loss(y_pred["rpn_objectness"], y_pred["rpn_deltas"], targets, positive,
                        negative)

    def get_config(self):
        return {
            **super().get_config(),
            "anchor_scales": self.anchor_scales, "anchor_ratios": self.anchor_ratios,
            "rpn_head": keras.saving.serialize_keras_object(self.rpn_head),
            "rpn_channels": self.rpn_channels,
            "rpn_matcher": self.rpn_matcher.get_config(),
            "rpn_sampler": {"batch_size_per_image": self.rpn_sampler.batch_size_per_image,
                            "positive_fraction": self.rpn_sampler.positive_fraction},
            "rpn_coder": self.rpn_coder.get_config(),
            "rpn_pre_nms_top_k": self.rpn_pre_nms_top_k,
            "rpn_post_nms_top_k": self.rpn_post_nms_top_k,
            "rpn_nms_threshold": self.rpn_nms_threshold, "rpn_min_size": self.rpn_min_size,
        }


def faster_rcnn(num_classes=20, input_shape=(600, 1000, 3), include_top=True, weights=None,
                pooling="roi_pool", classifier_activation="softmax", preprocessing="caffe",
                backbone="vgg16", backbone_weights=None, name=None, **kwargs):
    """Builds a Faster R-CNN (see `FasterRCNN` for the parts and their defaults).

    Args:
        num_classes: object classes (20 for PASCAL VOC).
        input_shape: `(height, width, 3)`; 600 x 1000 is the paper's scale (shorter side
            600, longer at most 1000).
        include_top: must be True (a detector without its heads is its backbone:
            build `vgg16` / `resnet50` with `include_top=False`).
        weights: None, or a weights file / MLflow URI of this detector (`load_weights`).
        pooling: RoI pooling of the box head: `"roi_pool"` (7x7 max, the paper) or
            `"roi_align"`.
        classifier_activation: `"softmax"` over the C + 1 classes (the paper).
        preprocessing: in-model preprocessing mode.
        backbone: `"vgg16"`, `"resnet50"` or `"small"`.
        backbone_weights: None, `"imagenet"`, a catalog entry of the backbone's model
            (`vgg16.tv_in1k`) or a file: ImageNet weights of the backbone (and, for VGG16
            with the paper's 7x7 / 4096 head, of fc6 / fc7), as the paper initializes it
            (`load_detector_backbone`); `preprocessing` must be what they expect.
        name: model name (`faster_rcnn_<backbone>` by default).
        **kwargs: any other `FasterRCNN` argument (anchors, thresholds, top-k, parts).

    Returns:
        A `FasterRCNN` (a `keras.Model`).
    """
    if not include_top:
        raise ValueError("A detector has no headless form; build its backbone instead. "
                         f"Received: include_top={include_top}")
    name = name or f"faster_rcnn_{backbone}"
    source = check_backbone_args(backbone_weights, backbone, name, preprocessing,
                                 weights=weights)
    model = FasterRCNN(num_classes=num_classes, input_shape=input_shape, backbone=backbone,
                       preprocessing=preprocessing, pooling=pooling,
                       classifier_activation=classifier_activation, name=name, **kwargs)
    if source is not None:
        load_detector_backbone(model, source, model.roi_head.fcs)
    return load_weights(model, weights)


# Tiny, fast settings for the registry smoke tests (every backend, CPU).
_TEST_OVERRIDES = {
    "input_shape": (64, 64, 3), "num_classes": 3, "backbone": "small", "rpn_channels": 16,
    "head_units": (16, 16), "pool_size": 2, "anchor_scales": (16, 32, 64),
    "rpn_pre_nms_top_k": (64, 64), "rpn_post_nms_top_k": (16, 8), "max_detections": 10,
    "box_sampler": {"batch_size_per_image": 16, "positive_fraction": 0.25},
    "rpn_sampler": {"batch_size_per_image": 32, "positive_fraction": 0.5}, "seed": 0,
}

# num_params: Keras counting (weights + biases) at the defaults, by hand, C = 20:
#   VGG16 to block5_conv3: 14,714,688 (keras.applications VGG16(include_top=False));
#   RPN 3*3*512*512+512 = 2,359,808, cls 512*9+9 = 4,617, reg 512*36+36 = 18,468;
#   fc6 7*7*512*4096+4096 = 102,764,544, fc7 4096*4096+4096 = 16,781,312,
#   cls_score 4096*21+21 = 86,037, bbox_pred 4096*84+84 = 344,148  -> 137,073,622.
#   resnet50: ResNet-50 to conv4_block6_out 8,589,184 (keras.applications ResNet50 layer
#   counts, conv1..conv4) + RPN on 1024 channels 3*3*1024*512+512 = 4,719,104, 4,617,
#   18,468 + fc6 7*7*1024*1024+1024 = 51,381,248, fc7 1,049,600, 21,525, 86,100.
register_model("faster_rcnn", faster_rcnn, task="detection", paper=PAPER,
               num_params=137_073_622, test_overrides=_TEST_OVERRIDES, backbone="vgg16",
               head_dropout=0.5)
register_model("faster_rcnn_resnet50", faster_rcnn, task="detection", paper=PAPER,
               num_params=65_869_846, test_overrides=_TEST_OVERRIDES, backbone="resnet50",
               head_units=(1024, 1024), preprocessing="caffe")
# faster_rcnn_small, C = 3: small backbone 3*3*3*32+32 = 896, 18,496, 73,856, 295,168
#   (388,416) + RPN 3*3*256*256+256 = 590,080, 256*9+9 = 2,313, 256*36+36 = 9,252 + fc6
#   7*7*256*256+256 = 3,211,520, fc7 65,792, cls_score 256*4+4 = 1,028, bbox_pred 4,112.
register_model("faster_rcnn_small", faster_rcnn, task="detection", paper=PAPER,
               num_params=4_272_513, test_overrides=_TEST_OVERRIDES, backbone="small",
               input_shape=(128, 128, 3), num_classes=3, rpn_channels=256,
               anchor_scales=(16, 32, 64), head_units=(256, 256), pool_size=7,
               rpn_pre_nms_top_k=(1000, 500), rpn_post_nms_top_k=(256, 100),
               box_sampler={"batch_size_per_image": 64, "positive_fraction": 0.25})
