"""The download path for real: a loopback HTTP server serves weight files of randomly
initialised models; the catalog (an extra `$KCV_WEIGHTS_CATALOG` file with hashes computed
here) points at it through `$KCV_WEIGHTS_BASE_URL`."""

import hashlib
import logging
import os
import shutil

import numpy as np
import pytest

from kerascv_suite import models, weights
from tests.weights.helpers import ENTRY, random_entry


def conv1_kernel(state):
    return state["features.0.weight"].numpy().transpose(2, 3, 1, 0)


def test_download_verify_convert_cache_and_reuse_offline(catalog, served, monkeypatch,
                                                          caplog):
    url, folder, state = served
    catalog(random_entry(folder))
    model = models.build("squeezenet1_1", weights="imagenet")
    np.testing.assert_array_equal(model.get_layer("conv1").get_weights()[0], conv1_kernel(state))
    assert models.describe(model)["preprocessing"] == "torch"
    assert models.describe(model)["class_names"][:2] == ["tench", "goldfish"]
    entry = weights.get_entry("squeezenet1_1.random")
    assert os.path.isfile(weights.cached_path(entry))
    assert os.path.isfile(weights.converted_path(entry))
    assert weights.is_cached(entry)
    assert [p for p in os.listdir(weights.cache_dir()) if p.endswith(".part")] == []

    # Offline (nothing listens on port 9): the converted cache is used.
    monkeypatch.setenv(weights.BASE_URL_ENV, "http://127.0.0.1:9")
    with caplog.at_level(logging.WARNING):
        small = models.build("squeezenet1_1", weights="squeezenet1_1.random", num_classes=5,
                             input_shape=(64, 64, 3))
    np.testing.assert_array_equal(small.get_layer("conv1").get_weights()[0], conv1_kernel(state))
    assert small.get_layer("conv10").get_weights()[0].shape == (1, 1, 512, 5)
    assert len(caplog.records) == 1 and "new: conv10" in caplog.records[0].getMessage()


def test_a_file_placed_by_hand_is_used_without_network(catalog, served, monkeypatch):
    _, folder, state = served
    catalog(random_entry(folder))
    monkeypatch.setenv(weights.BASE_URL_ENV, "http://127.0.0.1:9")
    entry = weights.get_entry("squeezenet1_1.random")
    with pytest.raises(weights.WeightsError) as error:
        models.build("squeezenet1_1", weights="imagenet")
    message = str(error.value)
    assert "http://127.0.0.1:9/squeezenet1_1-random.pth" in message
    assert weights.cached_path(entry) in message and "\n" not in message
    assert os.listdir(weights.cache_dir()) == []

    shutil.copy(folder / "squeezenet1_1-random.pth", weights.cached_path(entry))
    model = models.build("squeezenet1_1", weights="imagenet")
    np.testing.assert_array_equal(model.get_layer("conv1").get_weights()[0], conv1_kernel(state))


def test_a_hash_mismatch_is_an_error_and_the_file_is_not_kept(catalog, served):
    _, folder, _ = served
    catalog(random_entry(folder, hash="0" * 64))
    with pytest.raises(weights.WeightsError, match="not the published 0000"):
        models.build("squeezenet1_1", weights="imagenet")
    assert os.listdir(weights.cache_dir()) == []
    # A wrong file in the cache (placed by hand) is refused and removed too.
    entry = weights.get_entry("squeezenet1_1.random")
    shutil.copy(folder / "squeezenet1_1-random.pth", weights.cached_path(entry))
    with pytest.raises(weights.WeightsError, match="the file was removed"):
        weights.fetch(entry)
    assert not os.path.exists(weights.cached_path(entry))


def test_an_interrupted_download_leaves_nothing_in_the_cache(catalog, served, monkeypatch):
    url, folder, _ = served
    catalog(random_entry(folder))
    monkeypatch.setenv(weights.BASE_URL_ENV, f"{url}/cut")
    # keras.utils.get_file reports "retrieval incomplete: got only N out of M bytes".
    with pytest.raises(weights.WeightsError, match="Could not download .* incomplete"):
        models.build("squeezenet1_1", weights="imagenet")
    assert os.listdir(weights.cache_dir()) == []


def test_keras_format_entries_load_their_files_as_they_are(catalog, served, tmp_path):
    # keras.applications entries are Keras weight files: no conversion, loaded as they are.
    _, folder, _ = served
    source = models.build("squeezenet1_1", num_classes=10, input_shape=(64, 64, 3),
                          preprocessing="caffe")
    source.save_weights(folder / "squeezenet1_1-keras.weights.h5")
    checkpoint = folder / "squeezenet1_1-keras.weights.h5"
    catalog({**ENTRY, "name": "squeezenet1_1.keras", "source": "keras.applications",
             "format": "keras_h5", "converter": None, "preprocessing": "caffe",
             "input_shape": [64, 64, 3], "num_classes": 10,
             "url": "https://example.invalid/squeezenet1_1-keras.weights.h5",
             "hash_algorithm": "md5", "hash": hashlib.md5(checkpoint.read_bytes()).hexdigest()})
    model = models.build("squeezenet1_1", weights="squeezenet1_1.keras")
    for ours, theirs in zip(model.get_weights(), source.get_weights()):
        np.testing.assert_array_equal(ours, theirs)
    entry = weights.get_entry("squeezenet1_1.keras")
    assert not os.path.exists(weights.converted_path(entry))


def test_weights_of_another_model_or_unknown_names_are_refused(catalog, served):
    _, folder, _ = served
    catalog(random_entry(folder))
    with pytest.raises(weights.WeightsError, match="fit model 'squeezenet1_1', not"):
        models.build("squeezenet1_0", weights="squeezenet1_1.random")
    with pytest.raises(weights.WeightsError, match="no default pretrained weights"):
        models.build("lenet5", weights="imagenet")
    with pytest.raises(weights.WeightsError, match="trained with preprocessing='torch'"):
        models.build("squeezenet1_1", weights="imagenet", preprocessing="caffe")


def test_resnet18_imagenet_by_name_gives_torchvision_logits(catalog, served, torchvision):
    # The shipped entry's name, served from loopback with the hash of a random checkpoint:
    # build("resnet18", weights="imagenet") end to end, at the checkpoint's 224x224.
    import torch

    from tests.weights.helpers import photos, serve_random_resnet18, torch_preprocess

    module, entry = serve_random_resnet18(torchvision, served[1], seed=18)
    catalog(entry)
    model = models.build("resnet18", weights="imagenet", classifier_activation=None)
    images = photos(224)[:2]
    with torch.no_grad():
        theirs = module(torch_preprocess(images)).numpy()
    ours = np.asarray(model.predict(images, verbose=0))
    assert np.max(np.abs(ours - theirs)) / np.max(np.abs(theirs)) <= 1e-4
    assert model.get_layer("conv2_block1_1_bn").epsilon == 1e-5
    assert models.describe(model)["class_names"][0] == "tench"
