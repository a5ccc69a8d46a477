"""The shipped catalog holds the published values of its sources, copied right."""

import inspect

import pytest

from kerascv_suite import models, weights

# catalog entry -> torchvision 0.28 weights enum member.
TORCHVISION = {
    "vgg11.tv_in1k": "VGG11_Weights.IMAGENET1K_V1",
    "vgg16.tv_in1k": "VGG16_Weights.IMAGENET1K_V1",
    "squeezenet1_0.tv_in1k": "SqueezeNet1_0_Weights.IMAGENET1K_V1",
    "squeezenet1_1.tv_in1k": "SqueezeNet1_1_Weights.IMAGENET1K_V1",
    "resnet18.tv_in1k": "ResNet18_Weights.IMAGENET1K_V1",
    "vgg11_bn.tv_in1k": "VGG11_BN_Weights.IMAGENET1K_V1",
    "vgg13_bn.tv_in1k": "VGG13_BN_Weights.IMAGENET1K_V1",
    "vgg16_bn.tv_in1k": "VGG16_BN_Weights.IMAGENET1K_V1",
    "vgg19_bn.tv_in1k": "VGG19_BN_Weights.IMAGENET1K_V1",
    "vgg13.tv_in1k": "VGG13_Weights.IMAGENET1K_V1",
    "vgg19.tv_in1k": "VGG19_Weights.IMAGENET1K_V1",
    "resnet34.tv_in1k": "ResNet34_Weights.IMAGENET1K_V1",
    "resnet50_v1_5.tv_in1k": "ResNet50_Weights.IMAGENET1K_V1",
    "resnet50_v1_5.tv2_in1k": "ResNet50_Weights.IMAGENET1K_V2",
    "resnet101_v1_5.tv_in1k": "ResNet101_Weights.IMAGENET1K_V1",
    "resnet152_v1_5.tv_in1k": "ResNet152_Weights.IMAGENET1K_V1",
    "alexnet_owt.tv_in1k": "AlexNet_Weights.IMAGENET1K_V1",
    "googlenet_tv.tv_in1k": "GoogLeNet_Weights.IMAGENET1K_V1",
}
# Detector entries, checked against torchvision in tests/weights/test_ssd_coco.py.
DETECTION = {"ssd300_coco.tv_coco"}
# catalog entry -> keras.applications module whose source passes the URL and hash to get_file.
KERAS = {
    "vgg16.keras_in1k": "vgg16", "vgg19.keras_in1k": "vgg19", "resnet50.keras_in1k": "resnet",
    "resnet101.keras_in1k": "resnet", "resnet152.keras_in1k": "resnet",
    "inception_v3.keras_in1k": "inception_v3",
}


@pytest.fixture(autouse=True)
def shipped_catalog(monkeypatch):
    monkeypatch.delenv(weights.CATALOG_ENV, raising=False)


def test_every_entry_fits_a_registered_model_and_has_one_default_per_model():
    entries = weights.list_entries()
    assert {e.name for e in entries} == set(TORCHVISION) | set(KERAS) | DETECTION
    for entry in entries:
        assert models.is_registered(entry.model), entry.name
        assert entry.url.endswith(entry.file_name)
    defaults = [e.model for e in entries if e.default]
    assert len(defaults) == len(set(defaults))
    assert weights.default_entry("vgg16").name == "vgg16.keras_in1k"
    assert weights.resolve_entry("vgg16", "vgg16.tv_in1k").preprocessing == "torch"


@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_torchvision_entries_match_torchvision_meta(torchvision, name):
    enum, member = TORCHVISION[name].split(".")
    published = getattr(getattr(torchvision.models, enum), member)
    entry = weights.get_entry(name)
    assert entry.url == published.url
    # torchvision's file names end in the first 8 hex digits of the file's sha256.
    assert published.url.rsplit("-", 1)[1] == f"{entry.hash}.pth"
    assert entry.size_mb == published.meta["_file_size"]
    metrics = published.meta["_metrics"]["ImageNet-1K"]
    assert (entry.metric["top1"], entry.metric["top5"]) == (metrics["acc@1"], metrics["acc@5"])
    assert entry.class_names == list(published.meta["categories"])
    assert published.transforms().crop_size == [entry.input_shape[0]]


@pytest.mark.parametrize("name", sorted(KERAS))
def test_keras_applications_entries_match_keras_source(name):
    import importlib

    module = importlib.import_module(f"keras.src.applications.{KERAS[name]}")
    entry = weights.get_entry(name)
    assert entry.hash_algorithm == "md5"
    if hasattr(module, "WEIGHTS_HASHES"):  # resnet.py: one base URL, (top, notop) md5s
        assert entry.url == (f"{module.BASE_WEIGHTS_PATH}{entry.model}"
                             "_weights_tf_dim_ordering_tf_kernels.h5")
        assert entry.hash == module.WEIGHTS_HASHES[entry.model][0]
    else:  # vgg16.py, vgg19.py, inception_v3.py: the md5 is a literal of the get_file call
        assert entry.url == module.WEIGHTS_PATH
        assert f'file_hash="{entry.hash}"' in inspect.getsource(module)


def test_coco_categories_are_torchvision_91_ids(torchvision):
    names = weights.class_names("coco91")
    assert names == list(torchvision.models.detection.SSD300_VGG16_Weights.COCO_V1
                         .meta["categories"])
    assert (len(names), names[0], names[1], names[12], names[90]) == (
        91, "__background__", "person", "N/A", "toothbrush")


def test_a_malformed_extra_catalog_is_refused_with_the_entry_named(tmp_path, monkeypatch):
    path = tmp_path / "catalog.yaml"
    path.write_text("entries:\n  - {name: broken, model: resnet18, sourse: torchvision}\n")
    monkeypatch.setenv(weights.CATALOG_ENV, str(path))
    with pytest.raises(weights.WeightsError, match=r"entry 'broken' has unknown fields \['sourse'\]"):
        weights.list_entries()
