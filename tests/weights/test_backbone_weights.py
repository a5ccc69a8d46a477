"""`backbone_weights=` / `kcv train --backbone-weights`: ImageNet VGG16 / ResNet-50 weights
copied into the backbone of every detector and segmenter that has one
(kerascv_suite/weights/backbone.py).

Sources are legacy keras.applications-layout `.h5` files (what the catalog's vgg16 /
resnet50 entries publish) holding random arrays of VGG16's / ResNet-50's shapes; the
convolution-only file is served by the loopback server of conftest.py under catalog entries.
The file with fc1 / fc2 (7*7*512 x 4096, 4096 x 4096: 480 MB) is written once per module and
passed as a file: FCN's fc6 / fc7 are reshaped from it, SSD's subsampled.
"""

import logging

import h5py
import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from kerascv_suite import models, weights
from kerascv_suite.models.detection.backbones import load_detector_backbone
from kerascv_suite.weights.backbone import BACKBONE_LAYERS
from tests.weights.helpers import ENTRY

VGG16_FILTERS = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))


def vgg16_conv_shapes():
    """`{block{b}_conv{i}: ((3, 3, in, out), (out,))}` of VGG16 (configuration D)."""
    shapes, channels = {}, 3
    for block, filters in enumerate(VGG16_FILTERS, start=1):
        for index, out in enumerate(filters, start=1):
            shapes[f"block{block}_conv{index}"] = ((3, 3, channels, out), (out,))
            channels = out
    return shapes


def random_layers(shapes, seed):
    rng = np.random.default_rng(seed)
    return {name: [rng.random(s, dtype=np.float32) - 0.5 for s in layer_shapes]
            for name, layer_shapes in shapes.items()}


def write_legacy_h5(path, layers):
    """keras.applications' weight-file layout: `layer_names`, per layer `weight_names`."""
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [name.encode() for name in layers]
        for name, values in layers.items():
            group = f.create_group(name)
            kinds = (("kernel", "bias") if len(values) == 2 else
                     ("gamma", "beta", "moving_mean", "moving_variance"))
            group.attrs["weight_names"] = [f"{name}/{k}:0".encode() for k in kinds]
            for kind, value in zip(kinds, values):
                group.create_dataset(f"{name}/{kind}:0", data=value)
    return path


def md5(path):
    return weights.file_digest(path, "md5")


def assert_layers_equal(model, source, names):
    for name in names:
        got = model.get_layer(name).get_weights()
        assert len(got) == len(source[name]), name
        for a, b in zip(got, source[name]):
            np.testing.assert_array_equal(a, b, err_msg=name)


def vgg16_entry(path, name, **changes):
    return {**ENTRY, "name": name, "model": "vgg16", "source": "keras.applications",
            "format": "keras_h5", "converter": None, "preprocessing": "caffe",
            "hash_algorithm": "md5", "hash": md5(path), "default": True,
            "url": f"https://example.invalid/{path.name}", **changes}


def outer_sum(rows, units, rng):
    """A `(rows, units)` kernel `a[r] + b[u]` (distinct rows and columns, so any misplaced
    row or column shows), cheaper than 100M random draws."""
    a = rng.permutation(rows).astype(np.float32)
    b = rng.permutation(units).astype(np.float32) / units
    return a[:, None] + b[None, :]


@pytest.fixture(scope="module")
def vgg16_top(tmp_path_factory):
    """`(path, layers)`: a VGG16 file with fc1 / fc2 at full size."""
    rng = np.random.default_rng(1)
    layers = {**random_layers(vgg16_conv_shapes(), seed=1),
              "fc1": [outer_sum(7 * 7 * 512, 4096, rng), rng.random(4096, np.float32)],
              "fc2": [outer_sum(4096, 4096, rng), rng.random(4096, np.float32)]}
    path = tmp_path_factory.mktemp("vgg16") / "vgg16_top.h5"
    return write_legacy_h5(path, layers), layers


@pytest.fixture(scope="module")
def vgg16_convs(served):
    """`(path, layers)`: VGG16's 13 convolutions (a `_notop` file) in the served folder."""
    _, folder, _ = served
    layers = random_layers(vgg16_conv_shapes(), seed=2)
    return write_legacy_h5(folder / "vgg16_random_notop.h5", layers), layers


@pytest.fixture
def vgg16_catalog(catalog, vgg16_convs):
    """Catalog entries over the served file: `vgg16.random` (vgg16's default, caffe) and
    `vgg16.random_torch` (the same arrays announced with torch preprocessing)."""
    path, layers = vgg16_convs
    catalog(vgg16_entry(path, "vgg16.random"),
            vgg16_entry(path, "vgg16.random_torch", default=False, preprocessing="torch"))
    return layers


def test_fcn_takes_fc6_fc7_as_convolutions_reshaped_from_the_dense_layers(vgg16_top):
    path, layers = vgg16_top
    model = models.build("fcn32s", input_shape=(32, 32, 3), num_classes=2,
                         backbone_weights=str(path))
    assert_layers_equal(model, layers, vgg16_conv_shapes())
    fc6, fc6_bias = model.get_layer("fc6").get_weights()
    # Dense row (h * 7 + w) * 512 + c is the 7x7 kernel's tap (h, w) of input channel c.
    np.testing.assert_array_equal(fc6[2, 5, 7], layers["fc1"][0][(2 * 7 + 5) * 512 + 7])
    np.testing.assert_array_equal(fc6, layers["fc1"][0].reshape(7, 7, 512, 4096))
    np.testing.assert_array_equal(fc6_bias, layers["fc1"][1])
    fc7, fc7_bias = model.get_layer("fc7").get_weights()
    np.testing.assert_array_equal(fc7[0, 0], layers["fc2"][0])
    np.testing.assert_array_equal(fc7_bias, layers["fc2"][1])


def test_ssd_takes_the_papers_reduced_fc6_fc7(vgg16_top):
    path, layers = vgg16_top
    model = models.build("ssd300", num_classes=3, backbone_weights=str(path))
    assert_layers_equal(model, layers, vgg16_conv_shapes())
    fc1, b1 = layers["fc1"]
    fc6, fc6_bias = model.get_layer("fc6").get_weights()
    assert fc6.shape == (3, 3, 512, 1024) and model.get_layer("fc6").dilation_rate == (6, 6)
    # Tap (i, j) of the dilated 3x3 is tap (3i, 3j) of the 7x7; filter f is fc1's 4f.
    for i, j, c, f in ((0, 0, 0, 0), (1, 2, 5, 9), (2, 2, 511, 1023)):
        assert fc6[i, j, c, f] == fc1[(3 * i * 7 + 3 * j) * 512 + c, 4 * f]
    np.testing.assert_array_equal(fc6_bias, b1[::4])
    fc7, fc7_bias = model.get_layer("fc7").get_weights()
    fc2, b2 = layers["fc2"]
    assert fc7.shape == (1, 1, 1024, 1024) and fc7[0, 0, 3, 5] == fc2[12, 20]
    np.testing.assert_array_equal(fc7[0, 0], fc2[::4, ::4])
    np.testing.assert_array_equal(fc7_bias, b2[::4])


def test_segnet_and_deconvnet_encoders_from_the_catalog(vgg16_catalog, caplog):
    segnet = models.build("segnet", input_shape=(32, 32, 3), num_classes=3, blocks=2,
                          backbone_weights="imagenet")
    encoder = [f"block{b}_conv{i}" for b in (1, 2) for i in (1, 2)]
    assert_layers_equal(segnet, vgg16_catalog, encoder)
    assert models.describe(segnet)["preprocessing"] == "caffe"
    with caplog.at_level(logging.WARNING):
        deconvnet = models.build("deconvnet", input_shape=(32, 32, 3), num_classes=3,
                                 blocks=2, backbone_weights="vgg16.random")
    assert_layers_equal(deconvnet, vgg16_catalog, encoder)
    # The served file has no fc1 / fc2 (and blocks=2 puts fc6 on 128 channels): said once.
    assert "fc6, fc7 keep their initialization" in caplog.text


def test_two_stage_detectors_and_rcnn_take_the_vgg16_backbone(vgg16_catalog):
    small_head = {"input_shape": (64, 64, 3), "num_classes": 2, "head_units": (16, 16),
                  "pool_size": 2}
    fast = models.build("fast_rcnn", **small_head, backbone_weights="imagenet")
    assert_layers_equal(fast.backbone, vgg16_catalog, vgg16_conv_shapes())
    rcnn = models.build("rcnn", backbone="vgg16", input_shape=(64, 64, 3), num_classes=2,
                        warp_size=32, fc_units=(16, 16), backbone_weights="vgg16.random")
    assert_layers_equal(rcnn.backbone, vgg16_catalog, vgg16_conv_shapes())


def test_resnet50_detector_takes_conv1_to_conv4_with_batch_norm(tmp_path):
    kwargs = {"input_shape": (64, 64, 3), "num_classes": 2, "head_units": (16, 16),
              "pool_size": 2, "rpn_channels": 16}
    model = models.build("faster_rcnn_resnet50", **kwargs)
    shapes = {layer.name: [tuple(w.shape) for w in layer.weights]
              for layer in model.backbone.layers
              if layer.weights and BACKBONE_LAYERS["resnet50"].match(layer.name)}
    assert len(shapes) == 2 + 2 * (3 * 3 + 4 * 3 + 6 * 3 + 3)  # conv1 + 3 per block + shortcuts
    layers = random_layers(shapes, seed=4)
    for name, values in layers.items():  # BatchNorm variances must be positive
        if name.endswith("_bn"):
            values[3] = np.abs(values[3]) + 0.5
    path = write_legacy_h5(tmp_path / "resnet50.h5", layers)
    # What `build(..., backbone_weights=path)` runs after building (the vgg16 builds above
    # go through the builders).
    load_detector_backbone(model, str(path), model.roi_head.fcs)
    assert_layers_equal(model.backbone, layers, shapes)


def test_errors_name_the_model_the_weights_and_what_to_do(vgg16_catalog, vgg16_top):
    path, _ = vgg16_top
    cases = [
        (dict(name="fcn8s", width=0.25, backbone_weights="imagenet"),
         r"'fcn8s' at width=0.25 does not fit vgg16 weights 'vgg16.random'.*width 1"),
        (dict(name="faster_rcnn_small", backbone_weights="imagenet"),
         r"'faster_rcnn_small' has backbone 'small'.*backbone='vgg16'"),
        (dict(name="segnet", backbone_weights="resnet50.keras_in1k"),
         r"'resnet50.keras_in1k' are resnet50 weights; model 'segnet' has a vgg16 backbone"),
        # Given explicitly: without `preprocessing`, the registry takes the entry's.
        (dict(name="segnet", backbone_weights="vgg16.random_torch", preprocessing="caffe"),
         r"expect preprocessing='torch'.*preprocessing='caffe'"),
        (dict(name="ssd300", backbone_weights="imagenet", weights=str(path)),
         r"give one of them"),
    ]
    for arguments, message in cases:
        with pytest.raises(weights.WeightsError, match=message):
            models.build(arguments.pop("name"), **arguments)


def test_kcv_train_with_backbone_weights_sets_the_weights_and_their_preprocessing(
        vgg16_catalog, tmp_path, monkeypatch, mlflow_uri):
    from kerascv_suite.apps.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    (tmp_path / "segnet.yaml").write_text(yaml.safe_dump({"model_options": {"blocks": 1}}))
    run_dir = tmp_path / "run"
    result = CliRunner().invoke(main, [
        "train", "--model", "segnet", "--recipe", "none", "--config", "segnet.yaml",
        "--width", "1", "--image-size", "32", "--shapes-count", "5", "--epochs", "1",
        "--batch-size", "2", "--workers", "0", "--backbone-weights", "vgg16.random_torch",
        "--run-dir", str(run_dir)])
    assert result.exit_code == 0, result.output
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["backbone_weights"] == "vgg16.random_torch"
    assert config["model_options"]["preprocessing"] == "torch"

    import keras

    model = keras.saving.load_model(run_dir / "checkpoints" / "best.keras")
    assert models.describe(model)["preprocessing"] == "torch"
    assert model.get_layer("preprocessing").mode == "torch"
    # One epoch at lr 1e-3 moved the weights a little; they started from the served file.
    start = vgg16_catalog["block1_conv1"][0]
    trained = model.get_layer("block1_conv1").get_weights()[0]
    assert np.abs(trained - start).max() < 0.1 < np.abs(start).max()
    assert np.corrcoef(trained.ravel(), start.ravel())[0, 1] > 0.99
