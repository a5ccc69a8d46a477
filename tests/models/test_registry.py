"""Registry-wide tests: every registered model builds, predicts, trains and round-trips."""

import keras
import pytest

from kerascv_suite import models
from kerascv_suite.models import describe
from kerascv_suite.testing import run_model_test

ALL_MODELS = models.list_models()

# Issue 2's classification families, by registry name.
EXPECTED_CLASSIFIERS = {
    "lenet5", "lenet5_classic", "alexnet", "alexnet_two_tower", "zfnet",
    "vgg11", "vgg11_lrn", "vgg13", "vgg16_c", "vgg16", "vgg19", "nin", "googlenet",
    "inception_v2", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
    "se_resnet50", "squeezenet1_0", "squeezenet1_1", "a2_resnet50",
    # torchvision-exact layouts (issue 13), for its published weights.
    "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn", "resnet50_v1_5", "resnet101_v1_5",
    "resnet152_v1_5", "alexnet_owt", "googlenet_tv",
}


# The paper variants of the other tasks (issues 4-7), by registry name.
EXPECTED_BY_TASK = {
    "classification": EXPECTED_CLASSIFIERS,
    "detection": {"yolo_v1", "yolo_v1_tiny", "ssd300", "ssd512", "ssd300_tiny", "rcnn",
                  "rcnn_small", "fast_rcnn", "fast_rcnn_small", "faster_rcnn",
                  "faster_rcnn_resnet50", "faster_rcnn_small", "ssd300_coco"},
    "segmentation": {"fcn32s", "fcn16s", "fcn8s", "unet", "unet_paper", "segnet",
                     "deconvnet", "decouplednet"},
    "keypoints": {"hourglass"},
    "instance_segmentation": {"mask_rcnn", "mask_rcnn_resnet50", "mask_rcnn_small"},
}


@pytest.mark.parametrize("task", sorted(EXPECTED_BY_TASK))
def test_registry_has_every_paper_variant(task):
    missing = EXPECTED_BY_TASK[task] - set(models.list_models(task=task))
    assert not missing, f"not registered as {task}: {sorted(missing)}"


def test_list_models_filters_and_unknown_names():
    assert models.list_models("vgg1*") == ["vgg11", "vgg11_bn", "vgg11_lrn", "vgg13",
                                           "vgg13_bn", "vgg16", "vgg16_bn", "vgg16_c",
                                           "vgg19", "vgg19_bn"]
    ssd = models.list_models("ssd*", task="detection")
    assert {"ssd300", "ssd300_tiny", "ssd512"} <= set(ssd)
    assert ssd == sorted(ssd) and all(n.startswith("ssd") for n in ssd)
    assert models.list_models("ssd*", task="classification") == []
    assert models.is_registered("resnet50") and not models.is_registered("resnet5")
    with pytest.raises(ValueError, match="Did you mean"):
        models.build("resnet5")
    with pytest.raises(ValueError, match="task must be one of"):
        models.list_models(task="nonsense")


# Variants that only repeat blocks of another variant (more layers, same builder code path).
# The smoke test runs the representative on the right, which exercises every line the deeper
# variant would; every variant is still built at its defaults (test_registered_param_count).
DEPTH_ONLY_VARIANTS = {
    "resnet34": "resnet18",
    "resnet101": "resnet50",
    "resnet152": "resnet50",
    "vgg13": "vgg11",
    "vgg16": "vgg11",
    "vgg19": "vgg11",
    "vgg13_bn": "vgg11_bn",
    "vgg16_bn": "vgg11_bn",
    "vgg19_bn": "vgg11_bn",
    "resnet101_v1_5": "resnet50_v1_5",
    "resnet152_v1_5": "resnet50_v1_5",
}
# Recipe variants (kerascv_suite/recipes) are data over the paper variants' builders: they
# are smoke-tested on tensorflow; jax and torch test the builders through the paper and
# CPU variants.
RECIPE_VARIANTS = [n for n in ALL_MODELS if "CPU recipe variant" in models.get_spec(n).paper]
# Data over a builder smoke-tested on every backend through another variant, with nothing
# backend-specific of their own; smoke-tested on tensorflow (CI time), and where noted their
# outputs are checked on all three backends elsewhere:
# - ssd300_coco: ssd300's builder with other default-box scales and a Normalization layer
#   (raw heads compared with torchvision on all three);
# - the torchvision layouts: vgg11_bn (BatchNormalization after each conv), resnet50_v1_5
#   (the stride on the 3x3 conv), alexnet_owt and googlenet_tv (their logits equal
#   torchvision's on every backend: tests/weights/test_torch_convert.py);
# - mask_rcnn, mask_rcnn_resnet50: the mask head of mask_rcnn_small on the backbones of
#   faster_rcnn and faster_rcnn_resnet50, each smoke-tested on every backend.
TENSORFLOW_ONLY = {"ssd300_coco", "vgg11_bn", "resnet50_v1_5", "alexnet_owt", "googlenet_tv",
                   "mask_rcnn", "mask_rcnn_resnet50"}
# The big ImageNet classifiers: under jax most of their smoke test is XLA compiling one train
# step for their whole graph (16-36 s each on 2 cores, the longest tests of the jax run). On
# jax they build, predict and round-trip through `.keras` (every layer of the graph, its
# serialization and outputs); they train one step on tensorflow and torch. Every block they
# train is trained on jax by a smaller model, through the same code:
# - resnet50, se_resnet50, a2_resnet50: BottleneckBlock with SE and DoubleAttention in
#   tests/layers (run_layer_test trains a step; the builder's flat block equals the layer:
#   test_layer_equals_flat_block); the ResNet stem, stages and head train through resnet18;
# - inception_v2, inception_v3: modules A, B, C and both reductions, trained in
#   tests/layers/test_inception_module.py (the builder's blocks are those layers' code);
# - googlenet: googlenet_aux, the same builder plus the auxiliary heads, trains on jax;
# - hourglass: Keras' own layers only (Conv2D, BatchNormalization, MaxPooling2D, UpSampling2D,
#   Add), nothing backend-specific; a dict of outputs, as googlenet_aux's, which trains on jax.
#   Three supervised stacks train on tensorflow in tests/models/test_hourglass.py.
JAX_PREDICT_ONLY = {"resnet50", "se_resnet50", "a2_resnet50", "inception_v2", "inception_v3",
                    "googlenet", "hourglass"}
# The keypoint recipe's hourglass (stacks of depth 3, 64 filters, 64x64: a 33 s train step on
# tensorflow) builds, predicts and round-trips; hourglass's builder trains at the registered
# test size (depth 2: the same recursion) and with three stacks in test_hourglass.py, and
# `kcv train-keypoints` trains the recipe end to end (tests/apps/test_train_keypoints_cmd.py).
RECIPES_PREDICT_ONLY = {"hourglass_shapes"}
SMOKE_MODELS = [
    n for n in ALL_MODELS
    if n not in DEPTH_ONLY_VARIANTS
    and (keras.backend.backend() == "tensorflow"
         or (n not in RECIPE_VARIANTS and n not in TENSORFLOW_ONLY))
]


def test_jax_predict_only_models_have_their_blocks_trained_on_jax():
    smoke_on_jax = {n for n in ALL_MODELS if n not in DEPTH_ONLY_VARIANTS
                    and n not in RECIPE_VARIANTS and n not in TENSORFLOW_ONLY}
    assert JAX_PREDICT_ONLY <= smoke_on_jax
    assert RECIPES_PREDICT_ONLY <= set(RECIPE_VARIANTS)
    # What trains their code on jax instead: the same builders through smaller variants.
    for small, big in [("resnet18", "resnet50"), ("googlenet_aux", "googlenet")]:
        assert small in smoke_on_jax - JAX_PREDICT_ONLY
        assert models.get_spec(small).builder is models.get_spec(big).builder


def test_depth_only_variants_share_their_representatives_builder():
    for variant, representative in DEPTH_ONLY_VARIANTS.items():
        assert models.get_spec(variant).builder is models.get_spec(representative).builder
        # The representative is itself smoke-tested on every backend.
        assert representative in EXPECTED_CLASSIFIERS
        assert representative not in DEPTH_ONLY_VARIANTS


def _test_input_shape(spec):
    return tuple(spec.test_overrides.get("input_shape", spec.input_shape))


@pytest.mark.backend
@pytest.mark.parametrize("name", SMOKE_MODELS)
def test_model_smoke(name):
    spec = models.get_spec(name)
    model = spec.build(**spec.test_overrides)
    info = describe(model)
    assert (info["name"], info["task"]) == (name, spec.task)
    assert info["input_shape"] == _test_input_shape(spec)
    assert (info["decoder"] is not None) == (spec.task in ("detection",
                                                           "instance_segmentation"))
    train = name not in RECIPES_PREDICT_ONLY and not (
        keras.backend.backend() == "jax" and name in JAX_PREDICT_ONLY)
    restored = run_model_test(model, (2, *_test_input_shape(spec)), run_training=train)
    assert describe(restored) == info


@pytest.mark.slow
@pytest.mark.parametrize("name", ALL_MODELS)
def test_registered_param_count(name):
    # `num_params` is what `kcv models` prints; it must equal the model built at its defaults.
    spec = models.get_spec(name)
    model = spec.build()
    assert model.count_params() == spec.num_params
    keras.backend.clear_session()


def test_backbone_weights_on_a_model_without_a_pretrainable_backbone_is_one_clear_error():
    with pytest.raises(ValueError, match="'unet' has no VGG16 or ResNet-50 backbone"):
        models.build("unet", backbone_weights="imagenet")
