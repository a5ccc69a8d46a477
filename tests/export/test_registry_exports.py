"""`kcv export` works for every registered model (issue 11, "Done when" 1).

Exporting all of the registry's names would take minutes, so every name is exported
either here (`EXPORTED_HERE`: one module-scoped loop, SavedModel, reloaded with TensorFlow
and compared with Keras), or by another export test (`EXPORTED_ELSEWHERE`: every format
there), or is covered by a representative (`COVERED_BY`) with the same builder and task
whose options differ only in sizes and counts of the same layers (`SIZE_OPTIONS`, and per
builder `BUILDER_NEUTRAL`), or in values that some exported model has (its preprocessing
mode, `batch_norm`, the RoI `pooling`...). `test_every_registered_name_is_exported_or_covered`
checks that mapping from the registry's data, without building anything.

Recipe variants export from a `.keras` checkpoint (as `kcv export --model best.keras`).
"""

import inspect
from pathlib import Path

import keras
import pytest

from kerascv_suite.models import get_spec, list_models

TESTS = Path(__file__).resolve().parents[1]
# name -> size-only overrides on top of the registry's test sizes (fewer blocks: the
# export's cost is tracing, which grows with the layer count).
ONE_BLOCK = {"stack_sizes": (1, 1, 1, 1)}
EXPORTED_HERE = {
    "alexnet_two_tower": {}, "alexnet_owt": {}, "googlenet_aux": {}, "inception_v3": {},
    "lenet5_classic": {}, "nin_cifar": {}, "resnet18": ONE_BLOCK, "se_resnet50": ONE_BLOCK,
    "a2_resnet50": {}, "squeezenet1_1": {}, "vgg11_lrn": {}, "deconvnet": {"blocks": 2},
    "decouplednet": {}, "fcn8s": {}, "segnet": {"blocks": 2}, "unet_paper": {},
    "hourglass": {"depth": 1},
}
# Exported from a .keras checkpoint, as `kcv export --model best.keras` does (a trained
# recipe's checkpoint: hourglass_shapes is covered by hourglass).
FROM_CHECKPOINT = {"hourglass", "lenet5_classic"}
# name -> the test file exporting it (in the formats named there).
EXPORTED_ELSEWHERE = {
    "lenet5": "apps/test_export_cmd.py",
    "yolo_v1_shapes": "apps/test_export_cmd.py",
    "lenet5_digits": "export/test_quantized_exports.py",
    "unet_shapes": "export/test_segmenter_exports.py",
    "ssd300_tiny": "export/test_detector_exports.py",
    "yolo_v1_tiny": "export/test_detector_exports.py",
    "faster_rcnn_small": "export/test_detector_exports.py",
    "fast_rcnn_small": "export/test_detector_exports.py",
    "rcnn_small": "export/test_detector_exports.py",
    "mask_rcnn_small": "export/test_mask_rcnn_export.py",
}
COVERED_BY = {
    "alexnet": "alexnet_two_tower", "zfnet": "alexnet_two_tower",
    "googlenet": "googlenet_aux", "googlenet_tv": "googlenet_aux",
    "inception_v2": "inception_v3", "lenet5_digits_transfer": "lenet5", "nin": "nin_cifar",
    "resnet34": "resnet18", "resnet50": "resnet18", "resnet101": "resnet18",
    "resnet152": "resnet18", "resnet50_v1_5": "resnet18", "resnet101_v1_5": "resnet18",
    "resnet152_v1_5": "resnet18", "squeezenet1_0": "squeezenet1_1",
    "vgg11": "vgg11_lrn", "vgg13": "vgg11_lrn", "vgg16_c": "vgg11_lrn", "vgg16": "vgg11_lrn",
    "vgg19": "vgg11_lrn", "vgg11_bn": "vgg11_lrn", "vgg13_bn": "vgg11_lrn",
    "vgg16_bn": "vgg11_lrn", "vgg19_bn": "vgg11_lrn",
    "fast_rcnn": "fast_rcnn_small", "fast_rcnn_shapes": "fast_rcnn_small",
    "faster_rcnn": "faster_rcnn_small", "faster_rcnn_resnet50": "faster_rcnn_small",
    "faster_rcnn_shapes": "faster_rcnn_small", "rcnn": "rcnn_small",
    "rcnn_shapes": "rcnn_small", "ssd300": "ssd300_tiny", "ssd512": "ssd300_tiny",
    "ssd300_coco": "ssd300_tiny", "ssd300_shapes": "ssd300_tiny",
    "mask_rcnn": "mask_rcnn_small", "mask_rcnn_resnet50": "mask_rcnn_small",
    "mask_rcnn_shapes": "mask_rcnn_small", "yolo_v1": "yolo_v1_tiny",
    "deconvnet_shapes": "deconvnet", "decouplednet_shapes": "decouplednet",
    "fcn32s": "fcn8s", "fcn16s": "fcn8s", "fcn8s_shapes": "fcn8s",
    "hourglass_shapes": "hourglass", "segnet_shapes": "segnet", "unet": "unet_shapes",
}
# Options that only set sizes and counts of the same layers (and training-only settings).
SIZE_OPTIONS = {
    "input_shape", "num_classes", "width", "stack_sizes", "depth", "filters", "blocks",
    "num_stacks", "fc_units", "head_units", "rpn_channels", "anchor_scales",
    "rpn_pre_nms_top_k", "rpn_post_nms_top_k", "box_sampler", "rpn_sampler",
    "region_sampler", "pool_size", "mask_pool_size", "mask_channels", "mask_convs",
    "max_detections", "seed", "fallback_stride", "fallback_scales", "warp_size",
    "context_padding", "dropout", "head_dropout", "extra_blocks", "bn_epsilon", "name",
}
# Per builder, options whose values select arrangements of layers the representative has.
BUILDER_NEUTRAL = {
    # Conv sizes and strides, and where the LRN goes (before / after the pool).
    "alexnet": {"config", "lrn_position"},
    # Basic or bottleneck blocks, the stride on the 1x1 or 3x3 conv, conv biases: the
    # same Conv2D / BatchNormalization / Add layers.
    "resnet": {"block", "stride_on", "use_bias"},
    "vgg": {"config"},  # A..E: convs per stage (A-LRN's LRN: exported with vgg11_lrn)
    "ssd": {"config"},  # default-box layouts: numbers inside the decoder
    # googlenet_aux: the paper's graph plus the aux heads (dict outputs); torchvision's
    # layout: BatchNormalization after each conv, 3x3 in the "5x5" branch, ceil-mode pools.
    "googlenet": {"aux_classifiers", "layout"},
    "inception": {"version"},  # v2 / v3: other blocks of the same inception branches
    "squeezenet": {"version"},  # 1.0 / 1.1: fire modules in another arrangement
    "nin": {"config"},  # ImageNet / CIFAR: mlpconv counts and sizes
    "fcn": {"variant"},  # 32s and 16s: 8s's graph without some skip branches
    "deconvnet": {"fc_padding"},  # the padding of the fc6/fc7 convolutions
    # The detectors' backbones: the classifiers' conv stacks (vgg16, resnet50, alexnet).
    "faster_rcnn": {"backbone"}, "fast_rcnn": {"backbone"}, "rcnn": {"backbone"},
    "mask_rcnn": {"backbone"}, "yolo_v1": {"backbone"},
}
# Preprocessing modes computed by the same layers as another mode (a per-channel
# mean/std normalization).
SAME_PREPROCESSING = {"torchvision_ssd": "torch"}


def options(name):
    """The variant's arguments: its builder's defaults, then the variant's."""
    spec = get_spec(name)
    parameters = inspect.signature(spec.builder).parameters.values()
    found = {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}
    found.update(spec.defaults)
    found["preprocessing"] = spec.metadata(dict(spec.defaults)).get("preprocessing")
    return found


def normal(value):
    return tuple(normal(v) for v in value) if isinstance(value, (list, tuple)) else value


def test_every_registered_name_is_exported_or_covered():
    exported = {**dict.fromkeys(EXPORTED_HERE, "here"), **EXPORTED_ELSEWHERE}
    assert not set(exported) & set(COVERED_BY)
    assert set(list_models()) == set(exported) | set(COVERED_BY), \
        sorted(set(list_models()) ^ (set(exported) | set(COVERED_BY)))
    for name, path in EXPORTED_ELSEWHERE.items():
        assert f'"{name}"' in (TESTS / path).read_text(encoding="utf-8"), (name, path)
    for overrides in EXPORTED_HERE.values():
        assert set(overrides) <= SIZE_OPTIONS
    # Every (option, value) some exported model has.
    exercised = {(k, repr(normal(v))) for n in exported for k, v in options(n).items()}
    for variant, representative in COVERED_BY.items():
        spec, rep = get_spec(variant), get_spec(representative)
        assert representative in exported, variant
        assert spec.builder is rep.builder and spec.task == rep.task, variant
        mine, theirs = options(variant), options(representative)
        neutral = SIZE_OPTIONS | BUILDER_NEUTRAL.get(spec.builder.__name__, set())
        for key in set(mine) | set(theirs):
            value = normal(mine.get(key))
            if key in neutral or value == normal(theirs.get(key)):
                continue
            if key == "preprocessing":
                value = SAME_PREPROCESSING.get(value, value)
            assert (key, repr(value)) in exercised, (
                f"{variant} differs from {representative} in {key}={value!r}, which no "
                "exported model has: export it, or choose another representative")


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """{name: ExportCheck, or the error's text}: each of `EXPORTED_HERE` at the registry's
    test sizes written as a SavedModel, reloaded and compared with the Keras model."""
    from kerascv_suite.export import export_model, verify_export
    from kerascv_suite.models.resolve import get_model

    folder = tmp_path_factory.mktemp("registry")
    results = {}
    for name, overrides in EXPORTED_HERE.items():
        spec = get_spec(name)
        keras.utils.set_random_seed(0)
        model = spec.build(**{**spec.test_overrides, **overrides})
        if name in FROM_CHECKPOINT:
            model.save(folder / f"{name}.keras")
            model = get_model(str(folder / f"{name}.keras"))
        try:
            path = export_model(model, folder / name, "saved_model")
            results[name] = verify_export(model, path, "saved_model", batch_size=1)
        except Exception as error:  # reported by the test, all names at once
            results[name] = f"{type(error).__name__}: {error}"
        keras.backend.clear_session()
    return results


@pytest.mark.slow
@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="tests/export/test_backend_errors.py: jax and torch errors")
def test_every_representative_exports_and_matches_keras(exports):
    failed = {name: check for name, check in exports.items()
              if isinstance(check, str) or not check.ok(1e-4)}
    assert not failed, failed


@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="ONNX is written on the tensorflow backend")
def test_onnx_it_cannot_convert_is_a_clear_error(tmp_path):
    from kerascv_suite.export import export_model

    # MaxPoolingWithArgmax's BitwiseAnd / Bitcast have no ONNX conversion in tf2onnx.
    model = get_spec("segnet").build(**{**get_spec("segnet").test_overrides, "blocks": 1})
    with pytest.raises(ValueError, match="tf2onnx cannot convert.*saved_model or tflite"):
        export_model(model, tmp_path / "segnet.onnx", "onnx")
    assert not (tmp_path / "segnet.onnx").exists()
