"""Fast R-CNN (Girshick, "Fast R-CNN", ICCV 2015)."""

import keras
import numpy as np
from keras import ops

from kerascv_suite.models.detection import proposals as P
from kerascv_suite.models.detection.backbones import load_detector_backbone
from kerascv_suite.models.detection.two_stage import TwoStageDetector
from kerascv_suite.models.registry import register_model
from kerascv_suite.models.weights import load_weights
from kerascv_suite.weights.backbone import check_backbone_args

PAPER = "Girshick, 'Fast R-CNN', ICCV 2015"


@keras.saving.register_keras_serializable(package="kerascv_suite")
class FastRCNN(TwoStageDetector):
    """Fast R-CNN: one backbone pass per image, RoI pooling of external proposals, and a
    multi-task (softmax + smooth-L1) head.

    The proposals come with the input: a batch dict `{"images": (batch, H, W, 3),
    "proposals": (batch, R, 4)}` (xyxy pixels, all-zero rows are padding), e.g. from
    `selective_search_batch` (Uijlings et al. 2013, as in the paper). Given bare images,
    image-independent sliding windows (`proposals.grid_proposals` with
    `fallback_stride` / `fallback_scales`) stand in, so the exported graph still takes
    images only. RoI pooling is 7x7 max pooling (`"roi_pool"`), `"spp"` (a 4x4, 2x2, 1x1
    pyramid per RoI, SPP-net) or `"roi_align"`; training samples 128 RoIs per image, 25%
    foreground (IoU >= 0.5), background at IoU [0.1, 0.5), loss eq. 1 with lambda = 1.

    Args: as `FasterRCNN`'s head arguments, plus `fallback_stride` and `fallback_scales`.

    Output (inference): the detection contract dict (`boxes`, `scores`, `classes`,
    `num_detections`).
    """

    family = "fast_rcnn"

    def __init__(self, num_classes=20, input_shape=(600, 1000, 3), backbone="vgg16",
                 preprocessing="caffe", roi_head=None, pooling="roi_pool", pool_size=7,
                 head_units=(4096, 4096), head_dropout=0.5, box_matcher=None,
                 box_sampler=None, box_coder=None, bg_iou_low=0.1, score_threshold=0.05,
                 nms_threshold=0.3, max_detections=100, classifier_activation="softmax",
                 fallback_stride=32, fallback_scales=(64, 128, 256), seed=None, **kwargs):
        super().__init__(num_classes, input_shape, backbone, preprocessing, pooling,
                         pool_size, head_units, head_dropout, box_matcher, box_sampler,
                         box_coder, bg_iou_low, score_threshold, nms_threshold,
                         max_detections, classifier_activation, roi_head, seed, **kwargs)
        self.fallback_stride = int(fallback_stride)
        self.fallback_scales = tuple(fallback_scales)
        self.fallback = np.asarray(ops.convert_to_numpy(P.grid_proposals(
            self.image_shape[:2], self.fallback_stride, self.fallback_scales)))
        self.built = True

    def _proposals(self, inputs, features, training):
        if isinstance(inputs, dict) and "proposals" in inputs:
            proposals = P.clip_boxes(ops.cast(inputs["proposals"], "float32"),
                                     self.image_shape[:2])
        else:
            batch = ops.shape(features)[0]
            proposals = ops.broadcast_to(ops.convert_to_tensor(self.fallback)[None],
                                         (batch, *self.fallback.shape))
        valid = ops.logical_and(proposals[..., 2] > proposals[..., 0],
                                proposals[..., 3] > proposals[..., 1])
        return proposals, valid, {}

    def get_config(self):
        return {**super().get_config(), "fallback_stride": self.fallback_stride,
                "fallback_scales": self.fallback_scales}


def fast_rcnn(num_classes=20, input_shape=(600, 1000, 3), include_top=True, weights=None,
              pooling="roi_pool", classifier_activation="softmax", preprocessing="caffe",
              backbone="vgg16", backbone_weights=None, name=None, **kwargs):
    """Builds a Fast R-CNN (see `FastRCNN`).

    Args:
        num_classes: object classes (20 for PASCAL VOC).
        input_shape: `(height, width, 3)`, static.
        include_top: must be True (see `faster_rcnn`).
        weights: None, or a weights file / MLflow URI of this detector.
        pooling: `"roi_pool"` (7x7, the paper), `"spp"` or `"roi_align"`.
        classifier_activation: `"softmax"` over the C + 1 classes (the paper).
        preprocessing: in-model preprocessing mode.
        backbone: `"vgg16"`, `"resnet50"` or `"small"`.
        backbone_weights: None, `"imagenet"`, a catalog entry or a file: ImageNet weights
            of the backbone and, for VGG16 with the paper's head, fc6 / fc7 (see
            `faster_rcnn` and `load_detector_backbone`).
        name: model name (`fast_rcnn_<backbone>` by default).
        **kwargs: any other `FastRCNN` argument.

    Returns:
        A `FastRCNN` (a `keras.Model`).
    """
    if not include_top:
        raise ValueError("A detector has no headless form; build its backbone instead. "
                         f"Received: include_top={include_top}")
    name = name or f"fast_rcnn_{backbone}"
    source = check_backbone_args(backbone_weights, backbone, name, preprocessing,
                                 weights=weights)
    model = FastRCNN(num_classes=num_classes, input_shape=input_shape, backbone=backbone,
                     preprocessing=preprocessing, pooling=pooling,
                     classifier_activation=classifier_activation, name=name, **kwargs)
    if source is not None:
        load_detector_backbone(model, source, model.roi_head.fcs)
    return load_weights(model, weights)


_TEST_OVERRIDES = {
    "input_shape": (64, 64, 3), "num_classes": 3, "backbone": "small", "head_units": (16, 16),
    "pool_size": 2, "head_dropout": 0.0, "fallback_stride": 32, "fallback_scales": (16, 32),
    "max_detections": 10, "seed": 0,
    "box_sampler": {"batch_size_per_image": 16, "positive_fraction": 0.25},
}
# num_params by hand (Keras counting), C = 20: VGG16 to block5_conv3 14,714,688
# (keras.applications VGG16(include_top=False)) + fc6 7*7*512*4096+4096 = 102,764,544
# + fc7 16,781,312 + cls_score 4096*21+21 = 86,037 + bbox_pred 4096*84+84 = 344,148.
register_model("fast_rcnn", fast_rcnn, task="detection", paper=PAPER,
               num_params=134_690_729, test_overrides=_TEST_OVERRIDES, backbone="vgg16")
# fast_rcnn_small, C = 3: small backbone 388,416 + fc6 3,211,520 + fc7 65,792 + 1,028 + 4,112
# (the faster_rcnn_small head, see faster_rcnn.py).
register_model("fast_rcnn_small", fast_rcnn, task="detection", paper=PAPER,
               num_params=3_670_868,
               test_overrides=_TEST_OVERRIDES, backbone="small", input_shape=(128, 128, 3),
               num_classes=3, head_units=(256, 256), head_dropout=0.0,
               fallback_stride=16, fallback_scales=(16, 32, 64),
               box_sampler={"batch_size_per_image": 64, "positive_fraction": 0.25})
