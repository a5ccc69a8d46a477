import keras
import numpy as np
import pytest

from kerascv_suite import models
from kerascv_suite.bounding_box import SSD300, SSD512, ssd_default_boxes
from kerascv_suite.models import detection
from kerascv_suite.models.detection import SSDDecoder, load_vgg16_backbone
from kerascv_suite.testing import run_model_test
from tests.models.detection_helpers import (check_inference_contract, keras_round_trip,
                                            synthetic_targets)

SMALL = {"input_shape": (260, 260, 3), "num_classes": 3, "width": 1 / 16}


@pytest.mark.parametrize("name, boxes, config, maps", [
    # Paper sec. 3.1 / Table 7: 8,732 default boxes for SSD300 and 24,564 for SSD512.
    ("ssd300", 8732, SSD300, ("conv4_3_norm", "fc7", "conv8_2", "conv9_2", "conv10_2",
                              "conv11_2")),
    ("ssd512", 24564, SSD512, ("conv4_3_norm", "fc7", "conv8_2", "conv9_2", "conv10_2",
                               "conv11_2", "conv12_2")),
])
def test_ssd_heads_match_default_boxes(name, boxes, config, maps):
    model = models.build(name)
    assert model.output.shape == (None, boxes, 4 + 21)
    assert ssd_default_boxes(**config).shape[0] == boxes
    kind, info = detection.detector_kind(model)
    # At the paper's input size the model's default boxes are exactly the paper's.
    assert kind == "ssd" and info["default_boxes"] == {**config, "feature_map_sizes": tuple(
        config["feature_map_sizes"])} and info["num_classes"] == 20
    sizes = [model.get_layer(f"{m}_mbox_loc").output.shape[1] for m in maps]
    assert tuple(sizes) == config["feature_map_sizes"]


def test_ssd300_params():
    # Hand count written out in ssd.py: VGG16 convolutions 14,714,688 (keras.applications
    # VGG16 without top) + fc6/fc7 5,769,216 + L2Norm 512 + extras 2,459,520 + loc heads
    # 534,648 + 21-class conf heads 2,806,902 = 26,285,486.
    assert models.build("ssd300").count_params() == 26_285_486


@pytest.mark.backend
def test_ssd_trains_with_multibox_loss_and_detects():
    model = models.build("ssd300", **SMALL)
    loss = detection.make_loss(model)
    num_boxes = ssd_default_boxes(**loss.default_boxes).shape[0]
    run_model_test(model, (2, 260, 260, 3), expected_output_shape=(2, num_boxes, 4 + 4),
                   loss=loss, targets=synthetic_targets(2, 260, 3))

    detector = detection.make_inference_model(model, max_detections=10)
    images = np.random.default_rng(1).uniform(0, 255, (2, 260, 260, 3)).astype("float32")
    check_inference_contract(detector, images, num_classes=3, max_detections=10)
    keras_round_trip(detector, images)


@pytest.mark.backend
def test_ssd_decoder_hand_case():
    # Default boxes of a 2x2 map on a 10-pixel image: box 0 is (0.5, 0.5, 4.5, 4.5). Offsets
    # (0, 0, 0, 0) decode to it; dx = 1 moves it by 0.1 * 4 = 0.4 px (variance 0.1).
    # Logits (0, log 3, 0) give softmax (1/5, 3/5, 1/5): class 0 (index 1) scores 0.6.
    config = {"image_size": 10, "feature_map_sizes": (2,), "steps": (5,),
              "min_sizes": (4.0,), "max_sizes": (9.0,), "aspect_ratios": ((),)}
    pred = np.zeros((1, 8, 4 + 3), "float32")
    pred[:, :, 4] = 10.0  # background everywhere else
    pred[0, 0, 4:] = [0, np.log(3.0), 0]
    pred[0, 0, 0] = 1.0
    out = SSDDecoder(config, score_threshold=0.3, max_detections=2)(pred)
    out = {k: keras.ops.convert_to_numpy(v) for k, v in out.items()}
    assert out["num_detections"].tolist() == [1]
    np.testing.assert_allclose(out["boxes"][0, 0], [0.9, 0.5, 4.9, 4.5], atol=1e-5)
    np.testing.assert_allclose(out["scores"][0, 0], 0.6, atol=1e-6)
    assert out["classes"][0].tolist() == [0, -1]


def test_vgg16_weights_load_into_the_ssd_base(tmp_path):
    # keras.applications' VGG16 layer names: the same file loads into vgg16 and the SSD base.
    vgg = models.build("vgg16", include_top=False, input_shape=(32, 32, 3))
    path = str(tmp_path / "vgg16_notop.weights.h5")
    vgg.save_weights(path)
    ssd = load_vgg16_backbone(models.build("ssd300", num_classes=3), path)
    for name in ("block1_conv1", "block4_conv3", "block5_conv3"):
        for a, b in zip(ssd.get_layer(name).get_weights(), vgg.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)


# TensorFlow only: the variant adds core layers (BatchNormalization) and drops blocks, which
# test_ssd_trains_with_multibox_loss_and_detects covers on every backend; eager jax takes
# minutes over the ~80 layers and the loss on the 2-core CI machine.
def test_ssd_cpu_variant_batch_norm_and_fewer_extra_blocks():
    # 160 px: conv4_3 160/8 = 20, fc7 10, conv8_2 5, conv9_2 3, conv10_2 (valid 3x3) 1;
    # default boxes 20*20*4 + 10*10*6 + 5*5*6 + 3*3*6 + 1*4 = 2,408 (ratios of SSD300's
    # first five maps, paper Fig. 2).
    model = models.build("ssd300", input_shape=(160, 160, 3), num_classes=3, width=1 / 16,
                         batch_norm=True, extra_blocks=3)
    assert model.output.shape == (None, 2408, 4 + 4)
    assert "conv11_2" not in [layer.name for layer in model.layers]
    assert model.get_layer("block1_conv1").use_bias is False
    assert isinstance(model.get_layer("conv10_2_bn"), keras.layers.BatchNormalization)
    kind, info = detection.detector_kind(model)
    config = info["default_boxes"]
    assert config["feature_map_sizes"] == (20, 10, 5, 3, 1)
    # The paper's step scaled to the same grid span: 8 * (160 / 300) * (38 / 20) = 8.1067;
    # the last map's 300 * (160 / 300) * (1 / 1) = 160 (one cell, the whole image).
    np.testing.assert_allclose(config["steps"][0], 8 * 160 / 300 * 38 / 20)
    np.testing.assert_allclose(config["steps"][-1], 160.0)
    np.testing.assert_allclose(config["min_sizes"], [30 * 160 / 300, 60 * 160 / 300,
                                                     111 * 160 / 300, 162 * 160 / 300,
                                                     213 * 160 / 300])
    assert ssd_default_boxes(**config).shape[0] == 2408
    # Eager forward and loss (no compiled training step: kept cheap on every backend).
    images = np.random.default_rng(0).uniform(0, 255, (2, 160, 160, 3)).astype("float32")
    pred = model(images)
    assert tuple(pred.shape) == (2, 2408, 8)
    loss = detection.make_loss(model)(synthetic_targets(2, 160, 3), pred)
    assert np.isfinite(float(keras.ops.convert_to_numpy(loss)))


def test_ssd_rejects_bad_arguments():
    with pytest.raises(ValueError, match="extra_blocks must lie in"):
        models.build("ssd300", extra_blocks=5)
    with pytest.raises(ValueError, match="fewer extra_blocks"):
        models.build("ssd300", input_shape=(160, 160, 3), width=1 / 16)
    with pytest.raises(ValueError, match="square"):
        models.build("ssd300", input_shape=(300, 320, 3))
    with pytest.raises(ValueError, match="config must be one of"):
        models.build("ssd300", config="ssd1024")


# TensorFlow only: jax compiles the NMS loops for ~15 s on the 2-core CI machine;
# tests/bounding_box/test_nms.py checks the pieces on every backend.
def test_ssd_decoder_equals_decoding_every_box():
    # The decoder ranks (box, class) pairs and decodes only the pre-NMS top-k candidates;
    # the result must equal decoding all default boxes and ranking all pairs in NMS.
    from keras import ops

    from kerascv_suite.bounding_box import BoxCoder, batched_nms
    from kerascv_suite.models.detection.ssd import ssd_default_box_config

    config = ssd_default_box_config("ssd300", 300, (38, 19, 10, 5, 3, 1))
    rng = np.random.default_rng(0)
    pred = rng.normal(0, 1, (2, 8732, 4 + 1 + 3)).astype("float32")
    pred[..., 4] += 2.0  # mostly background, as a trained model
    decoder = SSDDecoder(config, score_threshold=0.05, max_detections=50, pre_nms_top_k=200)
    out = {k: ops.convert_to_numpy(v) for k, v in decoder(pred).items()}

    boxes = BoxCoder.from_variances().decode(ssd_default_boxes(**config)[None], pred[..., :4])
    boxes = ops.repeat(ops.clip(boxes, 0.0, 300.0), 3, axis=1)  # pair b * 3 + c
    scores = ops.softmax(pred[..., 4:], axis=-1)[..., 1:]
    classes = np.tile(np.arange(3, dtype="int32"), (2, 8732))
    old = batched_nms(boxes, ops.reshape(scores, (2, -1)), classes, iou_threshold=0.45,
                      score_threshold=0.05, max_detections=50, pre_nms_top_k=200)
    assert out["num_detections"].min() > 10
    for key in ("boxes", "scores", "classes", "num_detections"):
        np.testing.assert_allclose(out[key], ops.convert_to_numpy(old[key]), atol=1e-4)
