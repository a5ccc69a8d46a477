"""Semi-supervised segmentation data: a seeded fraction of the training masks, image labels
of every image (DecoupledNet), and the other segmenters trained on that fraction only."""

import hashlib

import numpy as np
import pytest
from click.testing import CliRunner

from kerascv_suite.apps.cli import main
from kerascv_suite.tasks.segmentation import (SegmentationTask, SegmenterConfig,
                                               masked_indices, partial_targets)


def test_masked_indices_are_a_seeded_fraction():
    chosen = masked_indices(800, 0.1, seed=0)
    assert len(chosen) == 80 and len(set(chosen.tolist())) == 80
    assert chosen.tolist() == masked_indices(800, 0.1, seed=0).tolist()
    assert chosen.tolist() != masked_indices(800, 0.1, seed=1).tolist()
    assert len(masked_indices(5, 0.01, seed=0)) == 1 and len(masked_indices(5, 1.0, 0)) == 5
    with pytest.raises(ValueError, match="mask_fraction must be in"):
        SegmenterConfig(mask_fraction=0)


def test_only_the_fraction_keeps_masks_and_every_image_keeps_its_labels(tmp_path):
    config = SegmenterConfig(model="decouplednet", shapes_count=10, image_size=32,
                             batch_size=4, augment=None, workers=0, mask_fraction=0.3,
                             recipe="none")
    data = SegmentationTask().load_data(config, tmp_path, lambda message: None)
    try:
        batches = [(np.asarray(x), y) for x, y in data.train]
    finally:
        data.close()
    train = data.splits["train"]
    originals = {key(train[i]["image"]): i for i in range(len(train))}
    masked = set(masked_indices(len(train), 0.3, seed=0).tolist())
    assert len(masked) == 3
    seen = set()
    for images, y in batches:
        for image, mask, labels in zip(images, np.asarray(y["masks"]), np.asarray(y["labels"])):
            index = originals[key(image)]
            truth = np.asarray(train[index]["mask"])
            assert labels.tolist() == [float(np.any(truth == c)) for c in (1, 2, 3)]
            np.testing.assert_array_equal(mask, truth if index in masked else 255)
            seen.add(index)
    assert len(seen) == len(train) == 10


def test_plain_segmenters_get_the_masks_of_the_fraction_only():
    import tensorflow as tf

    masks = np.array([[[1, 2]], [[0, 1]], [[3, 255]]], "uint8")
    used = np.array([1, 0, 1], "int32")
    ds = tf.data.Dataset.from_tensors((np.zeros((3, 1, 2, 3), "uint8"),
                                       {"masks": masks, "labels": used}))
    (_, kept), = list(partial_targets(ds, 4, image_labels=False))
    np.testing.assert_array_equal(kept, [[[1, 2]], [[255, 255]], [[3, 255]]])


def key(image):
    return hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest()


def test_cli_takes_and_checks_mask_fraction():
    result = CliRunner().invoke(main, ["train", "--model", "unet", "--mask-fraction", "0"])
    assert result.exit_code == 2 and "--mask-fraction" in result.output
